/* linalg.h - matrix products through cblas_sgemm. */
#ifndef TD_FUNCTIONAL_LINALG_H
#define TD_FUNCTIONAL_LINALG_H

#include "tensor/tensor.h"

/* a [..., n, k] @ b [..., k, m] -> [..., n, m]; batch dims broadcast; both
 * at least 2-d. A mismatched inner dim names both shapes. */
td_status td_matmul(td_tensor *a, td_tensor *b, td_tensor **out);
/* x [..., in] @ weight[out, in]^T + bias[out] (bias may be NULL). */
td_status td_linear(td_tensor *x, td_tensor *weight, td_tensor *bias, td_tensor **out);

#endif
