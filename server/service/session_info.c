/* session_info.c - SessionInfo messages from a session's fixed facts and summary. */
#include <stdlib.h>
#include <string.h>

#include "service/service.h"

int service_info_fill(session *s, Traind__V1__SessionInfo *info) {
  traind__v1__session_info__init(info);
  session_summary sum = session_get_summary(s);
  info->session_id = s->id;
  info->name = s->name;
  info->optimizer = (char *)s->optimizer_name;
  info->has_num_parameters = true;
  info->num_parameters = s->num_parameters;
  info->has_step = true;
  info->step = sum.step;
  info->has_training = true;
  info->training = sum.training;
  info->has_lr = true;
  info->lr = sum.lr;
  info->has_recorded = true;
  info->recorded = sum.recorded;
  info->has_has_grad = true;
  info->has_grad = sum.has_grad;
  info->has_created_unix_ms = true;
  info->created_unix_ms = s->created_ms;
  info->has_last_used_unix_ms = true;
  info->last_used_unix_ms = sum.last_used_ms;
  info->has_memory_bytes = true;
  info->memory_bytes = atomic_load(&s->mem->bytes);
  session_save_state save = session_get_save_state(s);
  info->has_saved_step = info->has_saved_unix_ms = true;
  info->saved_step = save.saved_step;
  info->saved_unix_ms = save.saved_ms;
  info->save_error = strdup(save.error);
  if (!info->save_error) return -1;
  if (s->n_params == 0) return 0;
  /* One allocation for the pointer array and the messages it points to. */
  size_t bytes = (size_t)s->n_params * (sizeof(Traind__V1__ParameterInfo *) +
                                        sizeof(Traind__V1__ParameterInfo));
  void *block = malloc(bytes);
  if (!block) return -1;
  Traind__V1__ParameterInfo **ptrs = block;
  Traind__V1__ParameterInfo *items = (Traind__V1__ParameterInfo *)(ptrs + s->n_params);
  for (int i = 0; i < s->n_params; i++) {
    traind__v1__parameter_info__init(&items[i]);
    items[i].name = s->params[i].name;
    items[i].n_shape = (size_t)s->params[i].ndim;
    items[i].shape = s->params[i].shape;
    items[i].has_dtype = true;
    items[i].dtype = spec_dtype_to_proto(s->params[i].dtype);
    ptrs[i] = &items[i];
  }
  info->parameters = ptrs;
  info->n_parameters = (size_t)s->n_params;
  return 0;
}

void service_info_clear(Traind__V1__SessionInfo *info) {
  free(info->save_error);
  info->save_error = NULL;
  free(info->parameters);
  info->parameters = NULL;
  info->n_parameters = 0;
}
