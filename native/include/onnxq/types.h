/* Element types shared by the kernel families. */
#ifndef ONNXQ_TYPES_H
#define ONNXQ_TYPES_H

typedef enum onnxq_dtype {
    ONNXQ_U8 = 0,   /* uint8_t,  range [0, 255] */
    ONNXQ_S8 = 1,   /* int8_t,   range [-128, 127] */
    ONNXQ_F32 = 2,  /* float */
    ONNXQ_I32 = 3   /* int32_t */
} onnxq_dtype;

#endif /* ONNXQ_TYPES_H */
