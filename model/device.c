// device.c: a device name to a backend (device.h).
#include "model/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_cuda.h"

int device_open(device *d, const char *spec, trl_err *e) {
    memset(d, 0, sizeof(*d));
    d->be = &ops_cpu;
    snprintf(d->name, sizeof(d->name), "cpu");
    if (!spec || !*spec || !strcmp(spec, "cpu")) return TRL_OK;
    long index = 0;
    if (strcmp(spec, "cuda") != 0) {
        char *end = NULL;
        if (strncmp(spec, "cuda:", 5) != 0 || spec[5] < '0' || spec[5] > '9' ||
            (index = strtol(spec + 5, &end, 10), *end) || index > 64)
            return trl_errf(e, "unknown device '%s' (cpu, cuda or cuda:N)", spec);
    }
    trl_err why = {{0}};
    const ops *be = ops_cuda_open((int)index, &why);
    if (!be) {
        snprintf(d->note, sizeof(d->note), "%s is not available (%s); running on the cpu", spec, why.msg);
        return TRL_OK;
    }
    d->be = be;
    snprintf(d->name, sizeof(d->name), "cuda:%ld", index);
    snprintf(d->info, sizeof(d->info), "%s", ops_cuda_device_name());
    return TRL_OK;
}
