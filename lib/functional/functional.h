/* functional.h - the whole functional API (MegEngine's megengine.functional).
 * Each function fills its op's params and goes through td_apply(). */
#ifndef TD_FUNCTIONAL_FUNCTIONAL_H
#define TD_FUNCTIONAL_FUNCTIONAL_H

#include "functional/activation.h"
#include "functional/conv.h"
#include "functional/elementwise.h"
#include "functional/linalg.h"
#include "functional/loss.h"
#include "functional/nn.h"
#include "functional/norm.h"
#include "functional/op.h"
#include "functional/reduce.h"
#include "functional/shape_ops.h"

#endif
