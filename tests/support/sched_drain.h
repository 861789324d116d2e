// sched_drain.h (test support): waits for a scheduler request's whole reply.
#ifndef TOOLRL_SCHED_DRAIN_H
#define TOOLRL_SCHED_DRAIN_H

#include "server/scheduler.h"

// The whole text of r once it is finished (malloc'd, "" for none); NULL when out of memory.
char *sched_drain(sched_req *r);

#endif
