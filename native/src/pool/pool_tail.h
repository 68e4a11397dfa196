/* The scalar max-pool step: the whole scalar kernel and the channel tail of every vector kernel. */
#ifndef ONNXQ_POOL_TAIL_H
#define ONNXQ_POOL_TAIL_H

#include <stddef.h>
#include <stdint.h>

/* y[c] = max_k taps[k][c] for first <= c < channels (ntaps >= 1); the bytes compare as int8 when
 * is_signed, else as uint8. */
static inline void onnxq_maxpool_tail(size_t first, size_t channels, size_t ntaps,
                                      const uint8_t* const* taps, uint8_t* y, int is_signed) {
    for (size_t c = first; c < channels; ++c) {
        if (is_signed) {
            int8_t m = (int8_t)taps[0][c];
            for (size_t k = 1; k < ntaps; ++k) m = (int8_t)taps[k][c] > m ? (int8_t)taps[k][c] : m;
            y[c] = (uint8_t)m;
        } else {
            uint8_t m = taps[0][c];
            for (size_t k = 1; k < ntaps; ++k) m = taps[k][c] > m ? taps[k][c] : m;
            y[c] = m;
        }
    }
}

#endif /* ONNXQ_POOL_TAIL_H */
