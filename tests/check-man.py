#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Every option, command and configuration key hmmv accepts has an entry in its man page.

usage: check-man.py SOURCE_ROOT HMMVD HMMVCTL

What the code accepts is read from the code itself:
  - hmmvd's and hmmvctl's options from their --help-all output (GOption's own listing),
  - hmmvctl's commands from the command list of its --help,
  - configuration keys from daemon/config.c's key table and from configs/hmmvd.conf (with the
    default each key is shown at there),
  - the quota metadata's attributes from daemon/quota.c's "known:" list.
An entry is a ".TP" paragraph whose tag line names the item (for a key: "key = default")
inside the right section; a word mentioned in passing does not count. Each missing item is
reported with the file to edit and the lines to add. The pages must also format without a
warning from man/groff (what lintian checks).
"""
import os
import re
import subprocess
import sys

root, hmmvd, hmmvctl = (os.path.abspath(a) for a in sys.argv[1:4])
man_dir = os.path.join(root, "daemon", "man")
problems = []


def read(*parts):
    with open(os.path.join(root, *parts), encoding="utf-8") as f:
        return f.read()


def plain(line):
    """roff source line -> its text: font and escape sequences removed."""
    line = re.sub(r"\\f(\[[A-Z]*\]|[BIRP])", "", line)
    line = line.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
    line = line.replace('"', "")
    line = re.sub(r"^\.(B|I|BR|RB|BI|IB|IR|RI)\s+", "", line)
    return line


def sections(page):
    """{".SH name" or ".SS name": [tag lines of its .TP/.TQ entries, plain text]}"""
    result = {}
    current = None
    lines = read("daemon", "man", page).splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^\.(SH|SS)\s+"?(.*?)"?\s*$', line)
        if m:
            current = m.group(2)
            result.setdefault(current, [])
        elif line.strip() in (".TP", ".TQ") and current is not None and i + 1 < len(lines):
            result[current].append(plain(lines[i + 1]))
    return result


def help_options(program):
    out = subprocess.run([program, "--help-all"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    options = []
    for line in text.splitlines():
        m = re.match(r"^\s+(?:(-\w),\s+)?(--[\w-]+)", line)
        if m and m.group(2) != "--help-all":
            options.append((m.group(1), m.group(2)))
    if not options:
        problems.append(f"{program} --help-all listed no option (exit {out.returncode}):\n{text}")
    return options, text


def roff(text):
    return text.replace("-", "\\-")


def check_options(program, page, options):
    tags = sections(page).get("OPTIONS", [])
    for short, long in options:
        entry = [t for t in tags if re.search(re.escape(long) + r"(?![\w-])", t)]
        if not entry:
            tag = (roff(short) + ' ", " ' if short else "") + roff(long)
            problems.append(
                f"{os.path.basename(program)} accepts {long} but {page} does not document it: "
                f"add to daemon/man/{page}, section OPTIONS:\n"
                f"  .TP\n  .BR {tag}\n  <what it does, its values and default>")
        elif short and not any(re.search(re.escape(short) + r"\b", t) for t in entry):
            problems.append(f"{page}: the OPTIONS entry of {long} does not name its short form "
                            f"{short} (daemon/man/{page})")


# ---- hmmvd and hmmvctl options ----
hmmvd_options, _ = help_options(hmmvd)
check_options(hmmvd, "hmmvd.8", hmmvd_options)
hmmvctl_options, hmmvctl_help = help_options(hmmvctl)
check_options(hmmvctl, "hmmvctl.8", hmmvctl_options)

# ---- hmmvctl commands: the two-space indented lines of --help's summary after "Commands" ----
commands = []
in_commands = False
for line in hmmvctl_help.splitlines():
    in_commands = in_commands or line.startswith("Commands")
    m = in_commands and re.match(r"^  ([a-z][^ ].*?)(?:\s{2,}|$)", line)
    if not m:
        continue
    for part in m.group(1).split("|"):
        word = part.split()[0] if part.split() else ""
        if re.fullmatch(r"[a-z][a-z-]*", word):
            commands.append(word)
if not commands:
    problems.append("hmmvctl --help listed no command (expected two-space indented command "
                    "lines); tests/check-man.py reads them there")
command_tags = sections("hmmvctl.8").get("COMMANDS", [])
for command in commands:
    if not any(re.match(re.escape(command) + r"(\s|$)", t) for t in command_tags):
        problems.append(f"hmmvctl has the command {command} but hmmvctl.8 does not document it: "
                        f"add to daemon/man/hmmvctl.8, section COMMANDS:\n  .TP\n"
                        f"  .B {roff(command)}\n  <what it does>")

# ---- configuration keys ----
config_c = read("daemon", "config.c")
keys = {}  # (group, key) -> default shown in configs/hmmvd.conf, or None
for group, key in re.findall(r'\{\s*"([\w-]+)",\s*"([\w-]+)",\s*KEY_', config_c):
    keys[(group, key)] = None
policy_macro = re.search(r'#define\s+POLICY\(name,\s*\w+\)\s*\\?\s*\{\s*"([\w-]+)"', config_c)
for key in re.findall(r'\bPOLICY\("([\w-]+)"', config_c):
    keys[(policy_macro.group(1) if policy_macro else "policy", key)] = None
if not keys:
    problems.append("no key found in daemon/config.c's key table (entries '{ \"group\", "
                    "\"key\", KEY_...'); update tests/check-man.py if the table changed shape")
group = None
conf_keys = set()
for line in read("configs", "hmmvd.conf").splitlines():
    m = re.match(r"^\[([\w-]+)\]", line)
    if m:
        group = m.group(1)
        continue
    m = re.match(r"^#\s?([a-z][a-z0-9-]*)\s*=\s*(.*?)\s*$", line)
    if m and group is not None:
        keys[(group, m.group(1))] = m.group(2)
        conf_keys.add((group, m.group(1)))
conf_sections = sections("hmmvd.conf.5")
for (group, key), default in sorted(keys.items()):
    tags = conf_sections.get(f"[{group}]")
    where = f"add to daemon/man/hmmvd.conf.5, section .SS [{group}]"
    if tags is None:
        where = f"add to daemon/man/hmmvd.conf.5 a section .SS [{group}] with"
        tags = []
    if (group, key) not in conf_keys:
        problems.append(f"[{group}] {key} is in daemon/config.c but not in configs/hmmvd.conf: "
                        f"add it there, commented out at its default (\"# {key} = DEFAULT\")")
    want = f"{key} = {default}".strip() if default is not None else f"{key} ="
    if not any(t.strip() == want or (default is None and t.startswith(want)) for t in tags):
        shown = want if default is not None else f"{key} = DEFAULT"
        problems.append(f"hmmvd.conf key [{group}] {key} (default {default!r}) has no entry in "
                        f"hmmvd.conf.5: {where}:\n  .TP\n  .B {roff(shown)}"
                        f"\n  <what it does, its range and unit>")

# ---- quota metadata attributes ----
m = re.search(r"unknown attribute %s \(known: ([^)]*)\)", read("daemon", "quota.c"))
if not m:
    problems.append("daemon/quota.c has no 'unknown attribute %s (known: ...)' list; update "
                    "tests/check-man.py to read the quota attributes where they are now")
else:
    quota_tags = sections("hmmvd.8").get("QUOTAS", [])
    quota_text = read("daemon", "man", "hmmvd.conf.5")
    for attribute in [a.strip() for a in m.group(1).split(",")]:
        if attribute not in quota_tags:
            problems.append(f"quota attribute {attribute} has no entry in hmmvd.8: add to "
                            f"daemon/man/hmmvd.8, section QUOTAS:\n  .TP\n"
                            f"  .B {roff(attribute)}\n  <meaning, default>")
        if roff(attribute) not in quota_text.split(".SH QUOTA METADATA")[-1]:
            problems.append(f"quota attribute {attribute} is not named in hmmvd.conf.5's QUOTA "
                            f"METADATA section (daemon/man/hmmvd.conf.5)")

# ---- the required sections ----
required = {
    "hmmvd.8": ["OPTIONS", "QUOTAS", "SIGNALS", "EXIT STATUS", "FILES"],
    "hmmvctl.8": ["COMMANDS", "OPTIONS", "EXIT STATUS", "FILES"],
    "hmmvd.conf.5": ["QUOTA METADATA", "FILES"],
}
for page, names in required.items():
    for name in names:
        if name not in sections(page):
            problems.append(f"{page} has no .SH {name} section (daemon/man/{page})")

# ---- formatting: what lintian's groff check sees ----
env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
for page in sorted(required):
    path = os.path.join(man_dir, page)
    try:
        out = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path],
                             capture_output=True, text=True, env=env, timeout=60)
    except FileNotFoundError:
        print(f"# man not installed: formatting of {page} not checked")
        continue
    if out.returncode != 0 or out.stderr.strip():
        problems.append(f"{page} formats with warnings (man --warnings):\n{out.stderr}")

checked = len(hmmvd_options) + len(hmmvctl_options) + len(commands) + len(keys)
if problems:
    print(f"{len(problems)} problem(s) in the man pages (daemon/man/):\n", file=sys.stderr)
    for p in problems:
        print("- " + p + "\n", file=sys.stderr)
    sys.exit(1)
print(f"man pages document all {len(hmmvd_options)} hmmvd options, {len(hmmvctl_options)} "
      f"hmmvctl options, {len(commands)} hmmvctl commands and {len(keys)} configuration keys "
      f"({checked} items)")
