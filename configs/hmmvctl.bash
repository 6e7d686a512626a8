# bash completion for hmmvctl(8). Installed as
# /usr/share/bash-completion/completions/hmmvctl (loaded on demand by bash-completion).
#
# Domain names for set-quota, pause, resume and placement come from hmmvd itself (hmmvctl --json vms:
# only root can reach its socket); for others, nothing is offered rather than an error.

_hmmvctl_vms()
{
    local socket=$1
    hmmvctl ${socket:+--socket "$socket"} --json vms 2>/dev/null |
        grep -o '"name" *: *"[^"]*"' | sed 's/^"name" *: *"\(.*\)"$/\1/'
}

_hmmvctl()
{
    local cur prev words cword
    _init_completion || return

    local commands="status vms placement set-quota pause resume track"
    local common="--socket --json --help"
    local quota="--min --max --weight --managed"
    local track="--qmp --interval-ms --count --trace"

    case $prev in
        --socket | -s | --qmp | --trace)
            _filedir
            return
            ;;
        --managed)
            COMPREPLY=($(compgen -W "yes no" -- "$cur"))
            return
            ;;
        --min | --max | --weight | --interval-ms | --count)
            return
            ;;
    esac

    # The command is the first word that is neither an option nor an option's argument.
    local i command="" socket="" nargs=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --socket | -s)
                socket=${words[i + 1]}
                ((i++))
                ;;
            --min | --max | --weight | --managed | --qmp | --interval-ms | --count | --trace)
                ((i++))
                ;;
            -*) ;;
            *)
                if [[ -z $command ]]; then
                    command=${words[i]}
                else
                    ((nargs++))
                fi
                ;;
        esac
    done

    if [[ $cur == -* ]]; then
        case $command in
            set-quota) COMPREPLY=($(compgen -W "$common $quota" -- "$cur")) ;;
            track) COMPREPLY=($(compgen -W "$common $track" -- "$cur")) ;;
            *) COMPREPLY=($(compgen -W "$common" -- "$cur")) ;;
        esac
        return
    fi

    case $command in
        "")
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
            ;;
        set-quota | pause | resume | placement)
            if ((nargs == 0)); then
                COMPREPLY=($(compgen -W "$(_hmmvctl_vms "$socket")" -- "$cur"))
            fi
            ;;
    esac
} &&
    complete -F _hmmvctl hmmvctl
