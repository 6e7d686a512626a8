/*
 * hmmv test guest: a B+ tree of 32-bit keys and values in an arena of 256-byte nodes (30
 * keys a node: a lookup in a tree of 2^20 keys reads 4-5 nodes), for the btree workload.
 * Insertion splits full nodes on the way down, so it never walks back up; a node is an
 * index into the arena, and the arena only grows (no deletes).
 */
#include "guest.h"

#define BT_KEYS 30

struct bt_node {
    uint16_t n;
    uint16_t leaf;
    uint32_t keys[BT_KEYS];
    uint32_t ptr[BT_KEYS + 1]; /* leaf: ptr[i] is keys[i]'s value; inner: children */
    uint32_t pad[2];
};

_Static_assert(sizeof(struct bt_node) == 256, "a B+ tree node is 256 bytes");

static struct bt_node *node(const struct btree *t, uint32_t idx)
{
    return (struct bt_node *)(void *)(t->arena + (idx << 8));
}

static uint32_t alloc_node(struct btree *t, int leaf)
{
    uint32_t idx = t->used++;
    struct bt_node *nd = node(t, idx);

    nd->n = 0;
    nd->leaf = (uint16_t)leaf;
    return idx;
}

/* the first i with keys[i] > key */
static uint32_t upper_bound(const struct bt_node *nd, uint32_t key)
{
    uint32_t lo = 0, hi = nd->n;

    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;

        if (nd->keys[mid] > key) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

void btree_init(struct btree *t, void *arena, uint32_t nodes)
{
    t->arena = arena;
    t->nodes = nodes;
    t->used = 0;
    t->root = alloc_node(t, 1);
    t->height = 1;
}

int btree_room(const struct btree *t)
{
    /* an insert splits at most one node a level and may add a root */
    return t->used + t->height + 1 <= t->nodes;
}

/* Split parent's full child i into two, the upper half in a new node. */
static void split_child(struct btree *t, uint32_t parent, uint32_t i)
{
    struct bt_node *p = node(t, parent);
    uint32_t ci = p->ptr[i], di = alloc_node(t, node(t, ci)->leaf);
    struct bt_node *c = node(t, ci), *d = node(t, di);
    uint32_t mid = BT_KEYS / 2, sep, j;

    if (c->leaf) {
        for (j = mid; j < c->n; j++) {
            d->keys[j - mid] = c->keys[j];
            d->ptr[j - mid] = c->ptr[j];
        }
        d->n = (uint16_t)(c->n - mid);
        sep = d->keys[0];
    } else {
        sep = c->keys[mid];
        for (j = mid + 1; j < c->n; j++) {
            d->keys[j - mid - 1] = c->keys[j];
        }
        for (j = mid + 1; j <= c->n; j++) {
            d->ptr[j - mid - 1] = c->ptr[j];
        }
        d->n = (uint16_t)(c->n - mid - 1);
    }
    c->n = (uint16_t)mid;
    for (j = p->n; j > i; j--) {
        p->keys[j] = p->keys[j - 1];
        p->ptr[j + 1] = p->ptr[j];
    }
    p->keys[i] = sep;
    p->ptr[i + 1] = di;
    p->n++;
}

int btree_insert(struct btree *t, uint32_t key, uint32_t value)
{
    struct bt_node *nd;
    uint32_t cur, i, j;

    if (!btree_room(t)) {
        return 0;
    }
    if (node(t, t->root)->n == BT_KEYS) {
        uint32_t r = alloc_node(t, 0);

        node(t, r)->ptr[0] = t->root;
        t->root = r;
        t->height++;
        split_child(t, r, 0);
    }
    cur = t->root;
    while (!node(t, cur)->leaf) {
        nd = node(t, cur);
        i = upper_bound(nd, key);
        if (node(t, nd->ptr[i])->n == BT_KEYS) {
            split_child(t, cur, i);
            if (key >= nd->keys[i]) {
                i++;
            }
        }
        cur = nd->ptr[i];
    }
    nd = node(t, cur);
    i = upper_bound(nd, key);
    if (i > 0 && nd->keys[i - 1] == key) {
        nd->ptr[i - 1] = value; /* an existing key: an update */
        return 1;
    }
    for (j = nd->n; j > i; j--) {
        nd->keys[j] = nd->keys[j - 1];
        nd->ptr[j] = nd->ptr[j - 1];
    }
    nd->keys[i] = key;
    nd->ptr[i] = value;
    nd->n++;
    return 1;
}

/* A key's value rewritten in place (no allocation, so it works in a full arena). */
int btree_update(struct btree *t, uint32_t key, uint32_t value)
{
    struct bt_node *nd = node(t, t->root);
    uint32_t i;

    while (!nd->leaf) {
        nd = node(t, nd->ptr[upper_bound(nd, key)]);
    }
    i = upper_bound(nd, key);
    if (i > 0 && nd->keys[i - 1] == key) {
        nd->ptr[i - 1] = value;
        return 1;
    }
    return 0;
}

int btree_lookup(const struct btree *t, uint32_t key, uint32_t *value)
{
    const struct bt_node *nd = node(t, t->root);
    uint32_t i;

    while (!nd->leaf) {
        nd = node(t, nd->ptr[upper_bound(nd, key)]);
    }
    i = upper_bound(nd, key);
    if (i > 0 && nd->keys[i - 1] == key) {
        *value = nd->ptr[i - 1];
        return 1;
    }
    return 0;
}
