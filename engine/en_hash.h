#pragma once
/* FNV-1a 64, the one hash of the project: the weights' identity (en_model.c, en_file.c), the
 * tokenizer's vocabulary table, a schedule's identity (sc_schedule_hash) and the state files'
 * checksum (sc_store.c). Stored files depend on its values: they must never change. Inline: the
 * tokenizer hashes every word piece it looks up. Internal to the tree (not installed). */

#include <stddef.h>
#include <stdint.h>

#define EN_FNV1A_BASIS 0xcbf29ce484222325ull // the offset basis: the hash of no bytes
#define EN_FNV1A_PRIME 0x100000001b3ull

/// `h` (EN_FNV1A_BASIS, or the hash of the bytes before) continued over `n` bytes at `p`.
static inline uint64_t en_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * EN_FNV1A_PRIME;
    return h;
}
