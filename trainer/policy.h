// policy.h: the inference engine's view of the weights being trained. A `model` whose F32
// tensors point straight into an lm_params buffer (no copy), so rollouts sample from the
// current policy and see every optimizer update at once. The view borrows the tokenizer and
// configuration of the model the parameters came from.
#ifndef TOOLRL_POLICY_H
#define TOOLRL_POLICY_H

#include "model/model.h"
#include "trainer/lm.h"

// Fills view so that engine_init(view, …) runs the weights in p. base supplies the
// configuration and tokenizer and must outlive the view. Free with policy_view_free (never
// model_free: the view owns only its layer array).
int policy_view_init(model *view, const lm_params *p, const model *base, trl_err *e);
void policy_view_free(model *view);

#endif
