/* Shared by the two source files of gwgevent._speedups (the codecs in _speedups.c, the
 * connection fast path in _speedups_conn.c). */
#ifndef GWGEVENT_SPEEDUPS_H
#define GWGEVENT_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "structmember.h"

/* max_package_size and friends: an int, one above the address space meaning no limit */
int as_limit(PyObject *obj, Py_ssize_t *out);
/* websocket: parse whole masked data frames from buf[pos:size] into msgs (see ws_frames) */
Py_ssize_t ws_parse(const unsigned char *buf, Py_ssize_t size, Py_ssize_t pos,
                    Py_ssize_t limit, int raw, PyObject *msgs);
/* websocket: one unmasked server frame */
PyObject *ws_frame_bytes(const char *payload, Py_ssize_t n, int op);
/* adds conn_install, flush_pending, write_many, queue_flush to the module */
int conn_module_init(PyObject *module);

#endif
