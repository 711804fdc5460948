/* cases_loss.c - op cases for losses (gradcheck and PyTorch parity). */
#include "common/op_case.h"

#define RUN_CE(fn, red, smoothing)                                                                 \
  static td_status fn(td_tensor **in, td_tensor **out) {                                           \
    return td_cross_entropy(in[0], in[1], red, smoothing, out);                                    \
  }
#define RUN_LOSS(fn, op, red)                                                                      \
  static td_status fn(td_tensor **in, td_tensor **out) { return td_##op(in[0], in[1], red, out); }

RUN_CE(ce_mean, TD_REDUCTION_MEAN, 0.0f)
RUN_CE(ce_sum, TD_REDUCTION_SUM, 0.0f)
RUN_CE(ce_none, TD_REDUCTION_NONE, 0.0f)
RUN_CE(ce_mean_ls, TD_REDUCTION_MEAN, 0.1f)
RUN_CE(ce_sum_ls, TD_REDUCTION_SUM, 0.1f)
RUN_CE(ce_none_ls, TD_REDUCTION_NONE, 0.1f)
RUN_LOSS(nll_mean, nll_loss, TD_REDUCTION_MEAN)
RUN_LOSS(nll_sum, nll_loss, TD_REDUCTION_SUM)
RUN_LOSS(nll_none, nll_loss, TD_REDUCTION_NONE)
RUN_LOSS(mse_mean, mse_loss, TD_REDUCTION_MEAN)
RUN_LOSS(mse_sum, mse_loss, TD_REDUCTION_SUM)
RUN_LOSS(mse_none, mse_loss, TD_REDUCTION_NONE)
RUN_LOSS(l1_mean, l1_loss, TD_REDUCTION_MEAN)
RUN_LOSS(l1_sum, l1_loss, TD_REDUCTION_SUM)
RUN_LOSS(l1_none, l1_loss, TD_REDUCTION_NONE)
RUN_LOSS(bce_mean, binary_cross_entropy_with_logits, TD_REDUCTION_MEAN)
RUN_LOSS(bce_sum, binary_cross_entropy_with_logits, TD_REDUCTION_SUM)
RUN_LOSS(bce_none, binary_cross_entropy_with_logits, TD_REDUCTION_NONE)

/* The number of dims of a shape list. */
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* Logits [n, c] (optionally a transposed view) and int64 classes in [0, c). */
#define CLASS_INPUTS(n, c, strided_)                                                               \
  .n_inputs = 2,                                                                                   \
  .inputs = {{.ndim = 2, .shape = {n, c}, .grad = true, .lo = -3, .hi = 3, .strided = strided_},   \
             {.ndim = 1, .shape = {n}, .dtype = TD_INT64, .lo = 0, .hi = c}}
/* A float32 input of the given shape with values in [lo, hi). */
#define F32(grad_, lo_, hi_, strided_, ...)                                                        \
  {                                                                                                \
    .ndim = NDIM(__VA_ARGS__), .shape = {__VA_ARGS__}, .grad = grad_, .lo = lo_, .hi = hi_,        \
    .strided = strided_                                                                            \
  }
/* Prediction and float target of one shape; `tgrad` also checks the target's
 * gradient. */
#define PAIR(strided_, tgrad, ...)                                                                 \
  .n_inputs = 2,                                                                                   \
  .inputs = {F32(true, -2, 2, strided_, __VA_ARGS__), F32(tgrad, -1, 1, false, __VA_ARGS__)}
/* bce targets are probabilities in [0, 1). */
#define BCE_PAIR(strided_, tgrad, ...)                                                             \
  .n_inputs = 2,                                                                                   \
  .inputs = {F32(true, -4, 4, strided_, __VA_ARGS__), F32(tgrad, 0, 1, false, __VA_ARGS__)}
/* l1 has a kink where pred == target: predictions stay 0.05 away from 0 and
 * targets within 0.02 of it, so the difference never comes near 0. */
#define L1_PRED(strided_, ...)                                                                     \
  {                                                                                                \
    .ndim = NDIM(__VA_ARGS__), .shape = {__VA_ARGS__}, .grad = true, .lo = -2, .hi = 2,            \
    .avoid = true, .avoid_at = 0, .avoid_gap = 0.05, .strided = strided_                           \
  }
#define L1_PAIR(strided_, tgrad, ...)                                                              \
  .n_inputs = 2,                                                                                   \
  .inputs = {L1_PRED(strided_, __VA_ARGS__), F32(tgrad, -0.02, 0.02, false, __VA_ARGS__)}

#define CE_PARAMS(red, ls) "{\"reduction\": \"" red "\", \"label_smoothing\": " ls "}"
#define RED(red) "{\"reduction\": \"" red "\"}"

const op_case op_cases_loss[] = {
    {.name = "cross_entropy_mean",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("mean", "0"),
     CLASS_INPUTS(8, 5, false),
     .run = ce_mean},
    {.name = "cross_entropy_sum",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("sum", "0"),
     CLASS_INPUTS(6, 7, false),
     .run = ce_sum},
    {.name = "cross_entropy_none",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("none", "0"),
     CLASS_INPUTS(5, 4, false),
     .run = ce_none},
    {.name = "cross_entropy_mean_smoothing",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("mean", "0.1"),
     CLASS_INPUTS(8, 5, false),
     .run = ce_mean_ls},
    {.name = "cross_entropy_sum_smoothing_strided",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("sum", "0.1"),
     CLASS_INPUTS(6, 7, true),
     .run = ce_sum_ls},
    {.name = "cross_entropy_none_smoothing",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("none", "0.1"),
     CLASS_INPUTS(5, 4, false),
     .run = ce_none_ls},
    {.name = "cross_entropy_mean_strided",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("mean", "0"),
     CLASS_INPUTS(4, 9, true),
     .run = ce_mean},
    {.name = "cross_entropy_batch1",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("mean", "0.1"),
     CLASS_INPUTS(1, 3, false),
     .run = ce_mean_ls},
    {.name = "cross_entropy_many_classes",
     .op = "cross_entropy",
     .params_json = CE_PARAMS("mean", "0"),
     CLASS_INPUTS(4, 300, false),
     .run = ce_mean},

    {.name = "nll_loss_mean",
     .op = "nll_loss",
     .params_json = RED("mean"),
     CLASS_INPUTS(7, 4, false),
     .run = nll_mean},
    {.name = "nll_loss_sum_strided",
     .op = "nll_loss",
     .params_json = RED("sum"),
     CLASS_INPUTS(5, 6, true),
     .run = nll_sum},
    {.name = "nll_loss_none",
     .op = "nll_loss",
     .params_json = RED("none"),
     CLASS_INPUTS(6, 3, false),
     .run = nll_none},
    {.name = "nll_loss_batch1",
     .op = "nll_loss",
     .params_json = RED("mean"),
     CLASS_INPUTS(1, 5, false),
     .run = nll_mean},

    {.name = "mse_loss_mean",
     .op = "mse_loss",
     .params_json = RED("mean"),
     PAIR(false, false, 4, 5),
     .run = mse_mean},
    {.name = "mse_loss_sum_strided",
     .op = "mse_loss",
     .params_json = RED("sum"),
     PAIR(true, false, 3, 6),
     .run = mse_sum},
    {.name = "mse_loss_none",
     .op = "mse_loss",
     .params_json = RED("none"),
     PAIR(false, false, 2, 3, 4),
     .run = mse_none},
    {.name = "mse_loss_mean_target_grad",
     .op = "mse_loss",
     .params_json = RED("mean"),
     PAIR(false, true, 7),
     .run = mse_mean},
    {.name = "mse_loss_mean_large",
     .op = "mse_loss",
     .params_json = RED("mean"),
     PAIR(false, false, 40, 30),
     .run = mse_mean},

    {.name = "l1_loss_mean",
     .op = "l1_loss",
     .params_json = RED("mean"),
     L1_PAIR(false, false, 4, 5),
     .run = l1_mean},
    {.name = "l1_loss_sum_strided",
     .op = "l1_loss",
     .params_json = RED("sum"),
     L1_PAIR(true, false, 5, 3),
     .run = l1_sum},
    {.name = "l1_loss_none_target_grad",
     .op = "l1_loss",
     .params_json = RED("none"),
     L1_PAIR(false, true, 3, 4),
     .run = l1_none},

    {.name = "bce_with_logits_mean",
     .op = "bce_with_logits",
     .params_json = RED("mean"),
     BCE_PAIR(false, false, 6, 4),
     .run = bce_mean},
    {.name = "bce_with_logits_sum_strided",
     .op = "bce_with_logits",
     .params_json = RED("sum"),
     BCE_PAIR(true, false, 4, 6),
     .run = bce_sum},
    {.name = "bce_with_logits_none_target_grad",
     .op = "bce_with_logits",
     .params_json = RED("none"),
     BCE_PAIR(false, true, 10),
     .run = bce_none},
    {0},
};
