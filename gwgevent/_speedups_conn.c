/*
 * gwgevent._speedups, part 2: the connection's per-message path in C.
 *
 * Why: at one message in flight per connection every message is its own wake-up, and after
 * the codecs went to C most of the user CPU per message was the Python layers around them:
 * _on_readable -> _recv -> feed -> _deliver on the way in, send -> encode -> write and
 * flush_pending -> _flush on the way out, each a Python frame, plus a 64 KB bytes object
 * allocated and shrunk by every recv() (vendor_notes/benchmarks.md, "Per-event cost").
 *
 * What: conn_install(TcpConnection, ...) records where TcpConnection and WebSocketCodec keep
 * their __slots__ and puts C versions of _on_readable, _queue_readable, send, write and _flush
 * on the class (method descriptors, so subclasses that override any of them keep their own);
 * flush_pending, write_many and queue_flush replace the module functions of the same names in
 * gwgevent/runtime/connection.py, whose Python code stays the reference and the fallback
 * (GWGEVENT_PURE=1, or no compiler). Each C function does what the Python one does for the
 * usual case and calls back into the Python methods for everything else (a TLS or custom
 * socket, a codec other than an open websocket, a partial write, a full buffer, an error),
 * so behaviour is defined once. tests/test_speedups.py drives both on real sockets.
 *
 * Sockets are read and written without releasing the GIL: they are non-blocking (and the
 * calls pass MSG_DONTWAIT), so the call cannot wait, and a GIL release is two mutex
 * operations per syscall for nothing in a one-thread process.
 */
#include "_speedups.h"
#include <errno.h>
#include <sys/socket.h>

#define READ_SIZE 65536

/* TcpConnection slots */
enum { C_WORKER, C_SOCK, C_CODEC, C_WW, C_OUT, C_SIZE, C_STATUS, C_BREAD, C_BWRITTEN,
       C_MAXSEND, C_MAXPKG, C_BUFFULL, C_WSTYPE, C_N };
static const char *conn_names[C_N] = {
    "worker", "sock", "codec", "_ww", "_out", "send_buffer_size", "_status", "bytes_read",
    "bytes_written", "max_send_buffer_size", "max_package_size", "buffer_full",
    "websocket_type"};
static Py_ssize_t conn_off[C_N];

/* WebSocketCodec slots; pending, more, buf and raw_text are CodecBase's (any codec has them) */
enum { W_STATE, W_BUF, W_PENDING, W_MORE, W_RAW, W_CUR, W_FRAG, W_N };
static const char *ws_names[W_N] = {"state", "buf", "pending", "more", "raw_text", "cur",
                                    "frag"};
static Py_ssize_t ws_off[W_N];

static PyTypeObject *conn_type = NULL;   /* TcpConnection */
static PyTypeObject *ws_type = NULL;     /* WebSocketCodec (exactly: subclasses go to Python) */
static PyTypeObject *codec_base = NULL;  /* CodecBase */
static PyTypeObject *sock_type = NULL;   /* _socket.socket */
static long ws_open = 1;                 /* WebSocketCodec's OPEN state */
static long st_connecting = 1, st_closing = 3, st_established = 2;
static PyObject *schedule_cb = NULL;     /* runs flush_pending once in this loop iteration */
static PyObject *input_failed = NULL;    /* runtime.badinput.input_failed */
static PyObject *pending = NULL;         /* connections with output queued since the last flush */
static int flush_scheduled = 0;

/* our method descriptors, to see whether a subclass overrides one */
static PyObject *d_recv_py = NULL;       /* TcpConnection._recv (Python) */
static PyObject *d_write = NULL, *d_flush = NULL;

static PyObject *s__recv, *s_destroy, *s__io_error, *s_feed, *s__deliver, *s_handle_messages,
    *s_queue_read, *s_encode, *s__buffer_overflow, *s_handle_buffer_full, *s__drained,
    *s__watch_writes, *s_write, *s__flush, *s_send, *s_read_word, *s_write_word, *s_empty;

static unsigned char rbuf[READ_SIZE];

static PyObject *c_flush(PyObject *self, PyObject *unused);

/* The fd of a _socket.socket: its first field (checked against fileno() in conn_install). */
typedef struct {
    PyObject_HEAD
    int sock_fd;
} sock_head;

#define SLOT(o, i) (*(PyObject **)((char *)(o) + conn_off[i]))
#define WSLOT(o, i) (*(PyObject **)((char *)(o) + ws_off[i]))

/* Store v (a new reference, stolen; NULL: an error already set) in slot i of o. */
static int
slot_put(PyObject *o, Py_ssize_t off, PyObject *v)
{
    if (v == NULL)
        return -1;
    PyObject **p = (PyObject **)((char *)o + off);
    PyObject *old = *p;
    *p = v;
    Py_XDECREF(old);
    return 0;
}

/* A slot that must be set: NULL with AttributeError when it is not. */
static PyObject *
slot_get(PyObject *o, Py_ssize_t off, const char *name)
{
    PyObject *v = *(PyObject **)((char *)o + off);
    if (v == NULL)
        PyErr_Format(PyExc_AttributeError, "'%s' object has no attribute '%s'",
                     Py_TYPE(o)->tp_name, name);
    return v;
}

static long
slot_long(PyObject *o, int i)
{
    PyObject *v = slot_get(o, conn_off[i], conn_names[i]);
    return v == NULL ? -1 : PyLong_AsLong(v);
}

static int
truthy(PyObject *v)
{
    if (v == Py_True)
        return 1;
    if (v == Py_False || v == Py_None)
        return 0;
    return PyObject_IsTrue(v);
}

static int
call_method_void(PyObject *self, PyObject *name, PyObject *arg)
{
    PyObject *r = arg == NULL ? PyObject_CallMethodNoArgs(self, name)
                              : PyObject_CallMethodOneArg(self, name, arg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The current exception as an instance (traceback attached); the error indicator cleared. */
static PyObject *
fetch_exc(void)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
}

/* errno from a failed recv/send -> self._io_error(what, OSError) */
static PyObject *
io_error(PyObject *self, PyObject *what)
{
    PyErr_SetFromErrno(PyExc_OSError);
    PyObject *exc = fetch_exc();
    if (exc == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodObjArgs(self, s__io_error, what, exc, NULL);
    Py_DECREF(exc);
    return r;
}

/* A Python socket call (a subclass's _recv, a non-standard socket's send) raised: 0 when it
 * was BlockingIOError or InterruptedError (nothing happened; the error is cleared), 1 when it
 * was another OSError (*result: what self._io_error(what, exc) returned, NULL if that
 * raised), -1 for anything else (the exception stays set), as the Python code's except
 * clauses do. */
static int
py_io_failed(PyObject *self, PyObject *what, PyObject **result)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
        PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_OSError))
        return -1;
    PyObject *exc = fetch_exc();
    *result = exc == NULL ? NULL : PyObject_CallMethodObjArgs(self, s__io_error, what, exc, NULL);
    Py_XDECREF(exc);
    return 1;
}

/* data as a bytes object (steals the reference; NULL with an exception) */
static PyObject *
as_bytes(PyObject *data)
{
    if (data == NULL || PyBytes_Check(data))
        return data;
    PyObject *b = PyBytes_FromObject(data);
    Py_DECREF(data);
    return b;
}

/* Input handling raised: an Exception closes this connection only (badinput.input_failed);
 * anything else (GreenletExit, KeyboardInterrupt) goes on up, as in the Python code. */
static PyObject *
input_raised(PyObject *self)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return NULL;
    PyObject *exc = fetch_exc();
    if (exc == NULL)
        return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs(input_failed, self, exc, NULL);
    Py_DECREF(exc);
    return r;
}

static int
schedule_flush(void)
{
    flush_scheduled = 1;
    PyObject *r = PyObject_CallNoArgs(schedule_cb);
    if (r == NULL) {
        flush_scheduled = 0;
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------------------ reading */

/* The codec's input state allows the C frame loop: an open websocket, nothing carried over. */
static int
ws_plain(PyObject *codec)
{
    if (Py_TYPE(codec) != ws_type)
        return 0;
    PyObject *state = WSLOT(codec, W_STATE), *more = WSLOT(codec, W_MORE);
    PyObject *buf = WSLOT(codec, W_BUF);
    if (state == NULL || more == NULL || buf == NULL || WSLOT(codec, W_CUR) != Py_None ||
        WSLOT(codec, W_FRAG) != Py_None || WSLOT(codec, W_RAW) == NULL)
        return 0;
    if (!PyLong_CheckExact(state) || PyLong_AsLong(state) != ws_open)
        return 0;
    return more == Py_False && PyBytes_CheckExact(buf) && PyBytes_GET_SIZE(buf) == 0;
}

/* msgs decoded from buf[0:n] by the codec (the C frame loop when it can, else codec.feed);
 * data: the same bytes as an object when the caller has one (else NULL). */
static PyObject *
decode(PyObject *codec, PyObject *self, const unsigned char *buf, Py_ssize_t n, PyObject *data)
{
    if (ws_plain(codec)) {
        Py_ssize_t limit;
        PyObject *lim = slot_get(self, conn_off[C_MAXPKG], "max_package_size");
        if (lim == NULL || as_limit(lim, &limit) < 0)
            return NULL;
        int raw = truthy(WSLOT(codec, W_RAW));
        if (raw < 0)
            return NULL;
        PyObject *msgs = PyList_New(0);
        if (msgs == NULL)
            return NULL;
        Py_ssize_t pos = ws_parse(buf, n, 0, limit, raw, msgs);
        if (pos < 0) {
            Py_DECREF(msgs);
            return NULL;
        }
        if (pos == n)
            return msgs;
        /* a partial or control frame: the Python parser goes on from there */
        if (slot_put(codec, ws_off[W_BUF],
                     PyBytes_FromStringAndSize((const char *)buf + pos, n - pos)) < 0) {
            Py_DECREF(msgs);
            return NULL;
        }
        PyObject *r = PyObject_CallMethodObjArgs(codec, s_feed, s_empty, msgs, NULL);
        Py_DECREF(msgs);
        return r;
    }
    if (data != NULL)
        return PyObject_CallMethodOneArg(codec, s_feed, data);
    PyObject *copy = PyBytes_FromStringAndSize((const char *)buf, n);
    if (copy == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodOneArg(codec, s_feed, copy);
    Py_DECREF(copy);
    return r;
}

/* Feed what was read to the codec and hand the messages to the owner (TcpConnection._deliver
 * for anything but plain messages). 0, or -1 with an exception set. */
static int
feed_and_deliver(PyObject *self, const unsigned char *buf, Py_ssize_t n, PyObject *data)
{
    PyObject *codec = slot_get(self, conn_off[C_CODEC], "codec");
    if (codec == NULL)
        return -1;
    Py_INCREF(codec);
    PyObject *msgs = decode(codec, self, buf, n, data);
    int rc = -1;
    if (msgs == NULL)
        goto done;
    if (PyObject_TypeCheck(codec, codec_base) && WSLOT(codec, W_PENDING) == Py_False &&
        WSLOT(codec, W_MORE) == Py_False) {
        /* no side effects, nothing held back: _deliver would only hand msgs over */
        if (PyList_CheckExact(msgs) && PyList_GET_SIZE(msgs) == 0) {
            rc = 0;
        } else {
            PyObject *worker = slot_get(self, conn_off[C_WORKER], "worker"), *r = NULL;
            if (worker != NULL)
                r = PyObject_CallMethodObjArgs(worker, s_handle_messages, self, msgs, NULL);
            rc = r == NULL ? -1 : 0;
            Py_XDECREF(r);
        }
    } else {
        rc = call_method_void(self, s__deliver, msgs);
    }
    Py_DECREF(msgs);
done:
    Py_DECREF(codec);
    return rc;
}

/* TcpConnection._on_readable: one read, decoded and handed to the owner. */
static PyObject *
c_on_readable(PyObject *self, PyObject *unused)
{
    PyObject *sock = SLOT(self, C_SOCK), *data = NULL;
    const unsigned char *buf;
    Py_ssize_t n;
    if (sock != NULL && Py_TYPE(sock) == sock_type &&
        _PyType_Lookup(Py_TYPE(self), s__recv) == d_recv_py) {
        n = recv(((sock_head *)sock)->sock_fd, rbuf, READ_SIZE, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                Py_RETURN_NONE;
            return io_error(self, s_read_word);
        }
        buf = rbuf;
    } else {
        /* TLS (or a subclass's own _recv): the Python read */
        data = PyObject_CallMethodNoArgs(self, s__recv);
        if (data == NULL) {
            PyObject *r = NULL;
            int how = py_io_failed(self, s_read_word, &r);
            return how == 0 ? Py_NewRef(Py_None) : how == 1 ? r : NULL;
        }
        if ((data = as_bytes(data)) == NULL)
            return NULL;
        buf = (const unsigned char *)PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
    }
    if (n == 0) {
        Py_XDECREF(data);
        return PyObject_CallMethodNoArgs(self, s_destroy);
    }
    /* bytes_read += n */
    PyObject *br = slot_get(self, conn_off[C_BREAD], "bytes_read");
    Py_ssize_t total = br == NULL ? -1 : PyLong_AsSsize_t(br);
    if (total < 0 || slot_put(self, conn_off[C_BREAD], PyLong_FromSsize_t(total + n)) < 0) {
        Py_XDECREF(data);
        return NULL;
    }
    int rc = feed_and_deliver(self, buf, n, data);
    Py_XDECREF(data);
    if (rc < 0)
        return input_raised(self);
    /* The answers to this read leave now, in one send(), while the socket is hot in the
     * cache, not after every other connection of the loop iteration was read: with 1 000
     * connections ready at once that costs the kernel about 1 us more per message
     * (vendor_notes/benchmarks.md). Writes to other connections (a gateway's worker link, a
     * broadcast) still wait for flush_pending, so they are still batched. */
    PyObject *out = SLOT(self, C_OUT);
    if (out != NULL && out != Py_None && SLOT(self, C_WW) == Py_None &&
        _PyType_Lookup(Py_TYPE(self), s__flush) == d_flush)
        return c_flush(self, NULL);
    Py_RETURN_NONE;
}

/* TcpConnection._queue_readable: the read watcher of a connection whose owner batches reads */
static PyObject *
c_queue_readable(PyObject *self, PyObject *unused)
{
    PyObject *worker = slot_get(self, conn_off[C_WORKER], "worker");
    if (worker == NULL)
        return NULL;
    return PyObject_CallMethodOneArg(worker, s_queue_read, self);
}

/* ------------------------------------------------------------------------------ writing */

static PyObject *
write_impl(PyObject *self, PyObject *data, int force)
{
    PyObject *sizeo = slot_get(self, conn_off[C_SIZE], "send_buffer_size");
    PyObject *maxo = slot_get(self, conn_off[C_MAXSEND], "max_send_buffer_size");
    Py_ssize_t size, maxs, len;
    if (sizeo == NULL || maxo == NULL || as_limit(maxo, &maxs) < 0)
        return NULL;
    size = PyLong_AsSsize_t(sizeo);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    long status = slot_long(self, C_STATUS);
    if (status == -1 && PyErr_Occurred())
        return NULL;
    if (status == st_connecting)
        force = 2;      /* queued until connected: no limit, no flush (its _ww is taken) */
    else if (size >= maxs && !force) {
        if (call_method_void(self, s__buffer_overflow, NULL) < 0)
            return NULL;
        Py_RETURN_FALSE;
    }
    len = PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data) : PyObject_Size(data);
    if (len < 0)
        return NULL;
    PyObject *out = SLOT(self, C_OUT);
    if (out != NULL && out != Py_None && !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "write: _out is not a list");
        return NULL;
    }
    if (out == NULL || out == Py_None) {
        PyObject *lst = PyList_New(1);
        if (lst == NULL)
            return NULL;
        Py_INCREF(data);
        PyList_SET_ITEM(lst, 0, data);
        slot_put(self, conn_off[C_OUT], lst);
        size = len;
        if (SLOT(self, C_WW) == Py_None && force != 2) {
            if (PyList_Append(pending, self) < 0)
                return NULL;
            if (!flush_scheduled && schedule_flush() < 0)
                return NULL;
        }
    } else {
        if (PyList_Append(out, data) < 0)
            return NULL;
        size += len;
    }
    if (slot_put(self, conn_off[C_SIZE], PyLong_FromSsize_t(size)) < 0)
        return NULL;
    if (size >= maxs && force != 2) {
        PyObject *full = SLOT(self, C_BUFFULL);
        int isfull = full == NULL ? 0 : truthy(full);
        if (isfull < 0)
            return NULL;
        if (!isfull) {
            Py_INCREF(Py_True);
            slot_put(self, conn_off[C_BUFFULL], Py_True);
            PyObject *worker = slot_get(self, conn_off[C_WORKER], "worker");
            if (worker == NULL || call_method_void(worker, s_handle_buffer_full, self) < 0)
                return NULL;
        }
    }
    Py_RETURN_TRUE;
}

/* write() through the class's own write when a subclass overrides it */
static PyObject *
dispatch_write(PyObject *self, PyObject *data)
{
    if (_PyType_Lookup(Py_TYPE(self), s_write) == d_write)
        return write_impl(self, data, 0);
    return PyObject_CallMethodOneArg(self, s_write, data);
}

/* parse (data[, force]) / (data[, raw]) of a METH_FASTCALL|METH_KEYWORDS method */
static int
parse_flag(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *fname,
           const char *flag, int *out)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *val = NULL;
    if (nargs + nkw < 1 || nargs + nkw > 2 || nargs < 1) {
        PyErr_Format(PyExc_TypeError, "%s(data, %s=False)", fname, flag);
        return -1;
    }
    if (nargs == 2)
        val = args[1];
    if (nkw == 1) {
        if (nargs == 2 || !PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), flag) != 0) {
            PyErr_Format(PyExc_TypeError, "%s(data, %s=False)", fname, flag);
            return -1;
        }
        val = args[1];
    }
    *out = val == NULL ? 0 : truthy(val);
    return *out < 0 ? -1 : 0;
}

/* TcpConnection.write(data, force=False) */
static PyObject *
c_write(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int force;
    if (parse_flag(args, nargs, kwnames, "write", "force", &force) < 0)
        return NULL;
    return write_impl(self, args[0], force);
}

/* The websocket frame for data (str or bytes) in the connection's websocket_type, or NULL
 * without an exception when the Python encoder must do it. */
static PyObject *
ws_encode_fast(PyObject *self, PyObject *codec, PyObject *data)
{
    PyObject *state = WSLOT(codec, W_STATE);
    PyObject *wstype = SLOT(self, C_WSTYPE);
    if (state == NULL || !PyLong_CheckExact(state) || PyLong_AsLong(state) != ws_open ||
        wstype == NULL || !PyBytes_CheckExact(wstype))
        return NULL;
    int op = PyBytes_GET_SIZE(wstype) ? (unsigned char)PyBytes_AS_STRING(wstype)[0] : 0x81;
    if (PyBytes_CheckExact(data))
        return ws_frame_bytes(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), op);
    if (PyUnicode_IS_ASCII(data))
        return ws_frame_bytes((const char *)PyUnicode_DATA(data), PyUnicode_GET_LENGTH(data),
                              op);
    PyObject *utf8 = PyUnicode_AsUTF8String(data);
    if (utf8 == NULL)
        return NULL;    /* (an exception: unencodable surrogates, as data.encode() raises) */
    PyObject *frame = ws_frame_bytes(PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8), op);
    Py_DECREF(utf8);
    return frame;
}

/* TcpConnection.send(data, raw=False) */
static PyObject *
c_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int raw;
    if (parse_flag(args, nargs, kwnames, "send", "raw", &raw) < 0)
        return NULL;
    long status = slot_long(self, C_STATUS);
    if (status == -1 && PyErr_Occurred())
        return NULL;
    if (status >= st_closing)
        Py_RETURN_FALSE;
    PyObject *data = args[0], *frame = NULL, *r;
    if (raw) {
        if (PyUnicode_CheckExact(data))
            frame = PyUnicode_AsUTF8String(data);
        else
            frame = Py_NewRef(data);
        if (frame == NULL)
            return NULL;
    } else {
        PyObject *codec = slot_get(self, conn_off[C_CODEC], "codec");
        if (codec == NULL)
            return NULL;
        if (Py_TYPE(codec) == ws_type &&
            (PyBytes_CheckExact(data) || PyUnicode_CheckExact(data))) {
            frame = ws_encode_fast(self, codec, data);
            if (frame == NULL && PyErr_Occurred())
                return NULL;
        }
        if (frame == NULL) {
            frame = PyObject_CallMethodOneArg(codec, s_encode, data);
            if (frame == NULL)
                return NULL;
            int t = truthy(frame);
            if (t <= 0) {
                Py_DECREF(frame);
                if (t < 0)
                    return NULL;
                Py_RETURN_NONE;     /* held by the codec until its handshake is done */
            }
        }
    }
    r = dispatch_write(self, frame);
    Py_DECREF(frame);
    return r;
}

/* TcpConnection._flush: write what is queued with one send() */
static PyObject *
c_flush(PyObject *self, PyObject *unused)
{
    PyObject *out = SLOT(self, C_OUT), *data;
    if (out == NULL || !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "_flush: nothing queued");
        return NULL;
    }
    data = as_bytes(PyList_GET_SIZE(out) == 1 ? Py_NewRef(PyList_GET_ITEM(out, 0))
                                               : _PyBytes_Join(s_empty, out));
    if (data == NULL)
        return NULL;
    Py_ssize_t len = PyBytes_GET_SIZE(data), sent;
    PyObject *sock = SLOT(self, C_SOCK);
    if (sock != NULL && Py_TYPE(sock) == sock_type) {
        sent = send(((sock_head *)sock)->sock_fd, PyBytes_AS_STRING(data), len,
                    MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                Py_DECREF(data);
                return io_error(self, s_write_word);
            }
            sent = 0;
        }
    } else {
        PyObject *r = sock == NULL ? NULL : PyObject_CallMethodOneArg(sock, s_send, data);
        if (r == NULL) {
            int how = sock == NULL ? -1 : py_io_failed(self, s_write_word, &r);
            if (how != 0) {
                Py_DECREF(data);
                return how == 1 ? r : NULL;
            }
            sent = 0;
        } else {
            sent = PyLong_AsSsize_t(r);
            Py_DECREF(r);
            if (sent == -1 && PyErr_Occurred()) {
                Py_DECREF(data);
                return NULL;
            }
        }
    }
    PyObject *bw = slot_get(self, conn_off[C_BWRITTEN], "bytes_written");
    Py_ssize_t total = bw == NULL ? -1 : PyLong_AsSsize_t(bw);
    if (total < 0 ||
        slot_put(self, conn_off[C_BWRITTEN], PyLong_FromSsize_t(total + sent)) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    if (sent == len) {
        Py_DECREF(data);
        PyObject *full = SLOT(self, C_BUFFULL);
        long status = slot_long(self, C_STATUS);
        if (status == -1 && PyErr_Occurred())
            return NULL;
        if (SLOT(self, C_WW) == Py_None && full == Py_False && status == st_established) {
            /* _drained() with nothing else to do: the usual case */
            Py_INCREF(Py_None);
            slot_put(self, conn_off[C_OUT], Py_None);
            return slot_put(self, conn_off[C_SIZE], PyLong_FromLong(0)) < 0 ? NULL
                                                                             : Py_NewRef(Py_None);
        }
        return PyObject_CallMethodNoArgs(self, s__drained);
    }
    PyObject *rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + sent, len - sent);
    Py_DECREF(data);
    if (rest == NULL)
        return NULL;
    PyObject *lst = PyList_New(1);
    if (lst == NULL) {
        Py_DECREF(rest);
        return NULL;
    }
    PyList_SET_ITEM(lst, 0, rest);
    slot_put(self, conn_off[C_OUT], lst);
    if (slot_put(self, conn_off[C_SIZE], PyLong_FromSsize_t(len - sent)) < 0)
        return NULL;
    if (SLOT(self, C_WW) == Py_None)
        return PyObject_CallMethodNoArgs(self, s__watch_writes);
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------- module functions */

static PyObject *
m_flush_pending(PyObject *module, PyObject *unused)
{
    flush_scheduled = 0;
    while (PyList_GET_SIZE(pending)) {
        PyObject *batch = pending;
        pending = PyList_New(0);
        if (pending == NULL) {
            pending = batch;
            return NULL;
        }
        Py_ssize_t i, n = PyList_GET_SIZE(batch);
        for (i = 0; i < n; i++) {
            PyObject *conn = PyList_GET_ITEM(batch, i), *r;
            PyObject *out = SLOT(conn, C_OUT), *ww = SLOT(conn, C_WW);
            if (out == NULL || out == Py_None || ww != Py_None)
                continue;
            if (_PyType_Lookup(Py_TYPE(conn), s__flush) == d_flush)
                r = c_flush(conn, NULL);
            else
                r = PyObject_CallMethodNoArgs(conn, s__flush);
            if (r == NULL) {
                /* the rest of this batch is flushed next time, not lost */
                PyObject *rest = PyList_GetSlice(batch, i + 1, n);
                if (rest != NULL) {
                    PyObject *t = PyNumber_InPlaceAdd(pending, rest);
                    Py_XDECREF(t);
                    Py_DECREF(rest);
                }
                Py_DECREF(batch);
                if (PyList_GET_SIZE(pending) && !flush_scheduled) {
                    PyObject *et, *ev, *etb;
                    PyErr_Fetch(&et, &ev, &etb);
                    if (schedule_flush() < 0)
                        PyErr_Clear();
                    PyErr_Restore(et, ev, etb);
                }
                return NULL;
            }
            Py_DECREF(r);
        }
        Py_DECREF(batch);
    }
    Py_RETURN_NONE;
}

static PyObject *
m_queue_flush(PyObject *module, PyObject *conn)
{
    if (PyList_Append(pending, conn) < 0)
        return NULL;
    if (!flush_scheduled && schedule_flush() < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Queue one framed message on conn (what write_many does for each connection): 0 or -1. */
static int
queue_on(PyObject *conn, PyObject *data, Py_ssize_t size)
{
    PyObject *out = SLOT(conn, C_OUT), *maxo = SLOT(conn, C_MAXSEND);
    Py_ssize_t maxs;
    if (maxo == NULL || as_limit(maxo, &maxs) < 0)
        return -1;
    if (out == Py_None && SLOT(conn, C_WW) == Py_None && size < maxs) {
        PyObject *lst = PyList_New(1);
        if (lst == NULL)
            return -1;
        Py_INCREF(data);
        PyList_SET_ITEM(lst, 0, data);
        slot_put(conn, conn_off[C_OUT], lst);
        if (slot_put(conn, conn_off[C_SIZE], PyLong_FromSsize_t(size)) < 0)
            return -1;
        return PyList_Append(pending, conn);
    }
    return call_method_void(conn, s_write, data);
}

/* The fan-out loop of write_many (rest NULL: every open connection gets data) and of
 * write_ws_open (rest a list: only open WebSocketCodecs of websocket_type wt, None: any; the
 * others are appended to rest). Closing connections are skipped in both. 0, or -1. */
static int
fan_out(PyObject *conns, PyObject *data, PyObject *wt, PyObject *rest)
{
    PyObject *it = PyObject_GetIter(conns), *conn;
    Py_ssize_t size = PyObject_Size(data);
    if (it == NULL || size < 0) {
        Py_XDECREF(it);
        return -1;
    }
    while ((conn = PyIter_Next(it)) != NULL) {
        int match = rest == NULL;
        if (!PyObject_TypeCheck(conn, conn_type)) {
            if (rest == NULL) {
                PyErr_SetString(PyExc_TypeError, "write_many: not a TcpConnection");
                goto fail;
            }
        } else {
            long status = slot_long(conn, C_STATUS);
            if (status == -1 && PyErr_Occurred())
                goto fail;
            if (status >= st_closing) {
                Py_DECREF(conn);
                continue;
            }
            PyObject *codec = SLOT(conn, C_CODEC), *cwt = SLOT(conn, C_WSTYPE);
            if (!match && codec != NULL && Py_TYPE(codec) == ws_type) {
                PyObject *state = WSLOT(codec, W_STATE);
                match = state != NULL && PyLong_CheckExact(state) &&
                        PyLong_AsLong(state) == ws_open;
                if (match && wt != Py_None && cwt != wt) {
                    match = cwt != NULL ? PyObject_RichCompareBool(cwt, wt, Py_EQ) : 0;
                    if (match < 0)
                        goto fail;
                }
            }
        }
        if ((match ? queue_on(conn, data, size) : PyList_Append(rest, conn)) < 0)
            goto fail;
        Py_DECREF(conn);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return -1;
    if (PyList_GET_SIZE(pending) && !flush_scheduled && schedule_flush() < 0)
        return -1;
    return 0;
fail:
    Py_DECREF(conn);
    Py_DECREF(it);
    return -1;
}

/* write_many(conns, data): queue the same framed bytes on many connections */
static PyObject *
m_write_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "write_many(conns, data)");
        return NULL;
    }
    return fan_out(args[0], args[1], Py_None, NULL) < 0 ? NULL : Py_NewRef(Py_None);
}

/* write_ws_open(conns, frame, websocket_type) -> rest: the broadcast fan-out of the Gateway
 * (GatewayCore.send_many). frame goes to every open connection whose codec is an open
 * WebSocketCodec and whose websocket_type is websocket_type (None: any; a binary frame);
 * connections closing are skipped (as write_many does); the others are returned, for the
 * Python code to frame and send one by one. */
static PyObject *
m_write_ws_open(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_ws_open(conns, frame, websocket_type)");
        return NULL;
    }
    PyObject *rest = PyList_New(0);
    if (rest == NULL || fan_out(args[0], args[1], args[2], rest) < 0) {
        Py_XDECREF(rest);
        return NULL;
    }
    return rest;
}

static PyMethodDef conn_methods[] = {
    {"_on_readable", c_on_readable, METH_NOARGS,
     "Read once, decode, hand the messages to the owner (C: gwgevent._speedups)."},
    {"_queue_readable", c_queue_readable, METH_NOARGS,
     "The read watcher of a connection whose owner batches reads (C)."},
    {"send", (PyCFunction)(void (*)(void))c_send, METH_FASTCALL | METH_KEYWORDS,
     "send(data, raw=False): queue data for the client. True = queued, False = dropped "
     "(closed or send buffer full), None = held until the handshake is done (C)."},
    {"write", (PyCFunction)(void (*)(void))c_write, METH_FASTCALL | METH_KEYWORDS,
     "write(data, force=False): queue framed bytes (C)."},
    {"_flush", c_flush, METH_NOARGS, "Write what is queued with one send() (C)."},
    {NULL, NULL, 0, NULL}
};

/* TcpConnection.status and .is_open: read on every send by the worker's transport, so a C
 * getter (no Python frame) instead of the Python properties */
static PyObject *
g_status(PyObject *self, void *closure)
{
    PyObject *v = slot_get(self, conn_off[C_STATUS], "_status");
    return v == NULL ? NULL : Py_NewRef(v);
}

static PyObject *
g_is_open(PyObject *self, void *closure)
{
    long status = slot_long(self, C_STATUS);
    if (status == -1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(status < st_closing);
}

static PyGetSetDef conn_getsets[] = {
    {"status", g_status, NULL, "The ConnectionStatus (C getter).", NULL},
    {"is_open", g_is_open, NULL, "Not closing or closed: data may still be sent and received "
     "(C getter).", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static int
find_offsets(PyTypeObject *tp, const char **names, Py_ssize_t *offs, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL)
            return -1;
        PyObject *d = _PyType_Lookup(tp, name);
        Py_DECREF(name);
        if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", tp->tp_name, names[i]);
            return -1;
        }
        offs[i] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    return 0;
}

/* conn_install(TcpConnection, CodecBase, WebSocketCodec, ws_open, connecting, closing,
 *              established, socket_type, probe_socket, schedule, input_failed) */
static PyObject *
m_conn_install(PyObject *module, PyObject *args)
{
    PyObject *cls, *bcls, *wcls, *stype, *probe, *sched, *failed;
    long wopen, connecting, closing, established;
    Py_ssize_t base_off[W_N];
    if (!PyArg_ParseTuple(args, "O!O!O!llllO!OOO:conn_install", &PyType_Type, &cls,
                          &PyType_Type, &bcls, &PyType_Type, &wcls, &wopen, &connecting,
                          &closing, &established, &PyType_Type, &stype, &probe, &sched,
                          &failed))
        return NULL;
    if (find_offsets((PyTypeObject *)cls, conn_names, conn_off, C_N) < 0 ||
        find_offsets((PyTypeObject *)wcls, ws_names, ws_off, W_N) < 0 ||
        find_offsets((PyTypeObject *)bcls, ws_names + W_BUF, base_off + W_BUF, W_RAW - W_BUF + 1)
            < 0)
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)wcls, (PyTypeObject *)bcls) ||
        base_off[W_BUF] != ws_off[W_BUF] || base_off[W_PENDING] != ws_off[W_PENDING] ||
        base_off[W_MORE] != ws_off[W_MORE] || base_off[W_RAW] != ws_off[W_RAW]) {
        PyErr_SetString(PyExc_TypeError, "conn_install: the codec is not a CodecBase");
        return NULL;
    }
    /* the fd read straight from a socket object must be what fileno() says */
    if (Py_TYPE(probe) != (PyTypeObject *)stype) {
        PyErr_SetString(PyExc_TypeError, "conn_install: the probe is not a socket");
        return NULL;
    }
    PyObject *fno = PyObject_CallMethod(probe, "fileno", NULL);
    if (fno == NULL)
        return NULL;
    long fd = PyLong_AsLong(fno);
    Py_DECREF(fno);
    if (fd < 0 || ((sock_head *)probe)->sock_fd != fd) {
        PyErr_SetString(PyExc_RuntimeError, "conn_install: unexpected socket object layout");
        return NULL;
    }
    PyObject *recv_py = _PyType_Lookup((PyTypeObject *)cls, s__recv);
    if (recv_py == NULL) {
        PyErr_SetString(PyExc_TypeError, "conn_install: no _recv");
        return NULL;
    }
    PyMethodDef *def;
    for (def = conn_methods; def->ml_name != NULL; def++) {
        PyObject *d = PyDescr_NewMethod((PyTypeObject *)cls, def);
        if (d == NULL || PyObject_SetAttrString(cls, def->ml_name, d) < 0) {
            Py_XDECREF(d);
            return NULL;
        }
        if (strcmp(def->ml_name, "write") == 0)
            Py_XSETREF(d_write, Py_NewRef(d));
        else if (strcmp(def->ml_name, "_flush") == 0)
            Py_XSETREF(d_flush, Py_NewRef(d));
        Py_DECREF(d);
    }
    PyGetSetDef *gs;
    for (gs = conn_getsets; gs->name != NULL; gs++) {
        PyObject *d = PyDescr_NewGetSet((PyTypeObject *)cls, gs);
        if (d == NULL || PyObject_SetAttrString(cls, gs->name, d) < 0) {
            Py_XDECREF(d);
            return NULL;
        }
        Py_DECREF(d);
    }
    Py_XSETREF(d_recv_py, Py_NewRef(recv_py));
    Py_XSETREF(conn_type, (PyTypeObject *)Py_NewRef(cls));
    Py_XSETREF(ws_type, (PyTypeObject *)Py_NewRef(wcls));
    Py_XSETREF(codec_base, (PyTypeObject *)Py_NewRef(bcls));
    Py_XSETREF(sock_type, (PyTypeObject *)Py_NewRef(stype));
    Py_XSETREF(schedule_cb, Py_NewRef(sched));
    Py_XSETREF(input_failed, Py_NewRef(failed));
    ws_open = wopen;
    st_connecting = connecting;
    st_closing = closing;
    st_established = established;
    Py_RETURN_NONE;
}

static PyMethodDef module_functions[] = {
    {"conn_install", m_conn_install, METH_VARARGS,
     "conn_install(TcpConnection, CodecBase, WebSocketCodec, OPEN, CONNECTING, CLOSING, "
     "ESTABLISHED, "
     "socket_type, "
     "probe_socket, schedule, input_failed): put the C per-message methods on the class."},
    {"flush_pending", m_flush_pending, METH_NOARGS,
     "Write every connection's queued data with one send() each (once per loop iteration)."},
    {"queue_flush", m_queue_flush, METH_O,
     "queue_flush(conn): flush conn in this loop iteration's flush_pending."},
    {"write_many", (PyCFunction)(void (*)(void))m_write_many, METH_FASTCALL,
     "write_many(conns, data): queue the same framed bytes on many connections."},
    {"write_ws_open", (PyCFunction)(void (*)(void))m_write_ws_open, METH_FASTCALL,
     "write_ws_open(conns, frame, websocket_type) -> rest: a broadcast's fan-out to the "
     "open websocket connections of that websocket_type (None: any); the rest returned."},
    {NULL, NULL, 0, NULL}
};

int
conn_module_init(PyObject *module)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    INTERN(s__recv, "_recv");
    INTERN(s_destroy, "destroy");
    INTERN(s__io_error, "_io_error");
    INTERN(s_feed, "feed");
    INTERN(s__deliver, "_deliver");
    INTERN(s_handle_messages, "handle_messages");
    INTERN(s_queue_read, "queue_read");
    INTERN(s_encode, "encode");
    INTERN(s__buffer_overflow, "_buffer_overflow");
    INTERN(s_handle_buffer_full, "handle_buffer_full");
    INTERN(s__drained, "_drained");
    INTERN(s__watch_writes, "_watch_writes");
    INTERN(s_write, "write");
    INTERN(s__flush, "_flush");
    INTERN(s_send, "send");
    INTERN(s_read_word, "read");
    INTERN(s_write_word, "write");
#undef INTERN
    s_empty = PyBytes_FromStringAndSize(NULL, 0);
    pending = PyList_New(0);
    if (s_empty == NULL || pending == NULL)
        return -1;
    PyMethodDef *def;
    for (def = module_functions; def->ml_name != NULL; def++) {
        PyObject *f = PyCFunction_NewEx(def, NULL, NULL);
        if (f == NULL || PyModule_AddObject(module, def->ml_name, f) < 0) {
            Py_XDECREF(f);
            return -1;
        }
    }
    return 0;
}
