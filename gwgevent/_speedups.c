/*
 * gwgevent._speedups: optional C versions of the websocket codec's hot loops.
 *
 * Why: at one message in flight per connection every message is its own wake-up, and the
 * pure-Python frame parser (about 1.1 us per 64-byte frame) was the largest single user-space
 * cost per message (vendor_notes/benchmarks.md, "Per-event cost"). These functions do exactly
 * what the Python code next to their callers does, for the common case only; anything unusual
 * (control frames, fragments, oversize, invalid UTF-8, incomplete frames) stops the C loop and
 * the Python code handles it, so behaviour is defined in one place. The package works without
 * this module (gwgevent/protocols/websocket.py falls back to Python, chosen at import); the
 * test tests/test_speedups.py checks both give identical results for every vector.
 *
 * Functions:
 *   ws_frames(buf, pos, limit, raw, msgs) -> int
 *       From pos, parse complete, masked, unfragmented text (0x81) and binary (0x82) frames
 *       whose payload is <= limit; append each payload to msgs (text: str, or the bytes when
 *       raw after checking they are UTF-8; binary: bytes, or memoryview(bytes) when raw).
 *       Return the position of the first byte not consumed (the first frame it did not take).
 *   unmask(payload, mask) -> bytes
 *   encode_frame(payload, opcode_byte=0x81) -> bytes     (unmasked server frame)
 *   gp_init(GatewayPacket); gp_split(buf, max_size) -> (packets, pos, bad_length)
 *       GatewayProtocol's split_decode (gwgevent/codec/gateway_protocol.py) in C.
 */
#include "_speedups.h"

static void
xor_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *mask)
{
    uint32_t m32;
    uint64_t m64;
    Py_ssize_t i = 0;
    memcpy(&m32, mask, 4);
    m64 = ((uint64_t)m32 << 32) | m32;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= m64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ mask[i & 3];
}

/* A size limit from Python (max_package_size): one above the address space means no limit. */
int
as_limit(PyObject *obj, Py_ssize_t *out)
{
    Py_ssize_t v = PyLong_AsSsize_t(obj);
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        v = PY_SSIZE_T_MAX;
    }
    *out = v;
    return 0;
}

/* 1 when s[0:n] is ASCII (most chat text is), so decoding cannot fail and is a copy */
static int
is_ascii(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ULL)
            return 0;
    }
    for (; i < n; i++)
        if (s[i] & 0x80)
            return 0;
    return 1;
}

/* The frame loop of ws_frames over a plain buffer (also used by the connection fast path in
 * _speedups_conn.c, which parses straight from its receive buffer): the position of the first
 * byte not consumed, or -1 with an exception set. */
Py_ssize_t
ws_parse(const unsigned char *buf, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t limit, int raw,
         PyObject *msgs)
{
    if (pos < 0)
        pos = 0;
    while (size - pos >= 6) {
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        Py_ssize_t ln = b1 & 0x7F, start;
        if (!(b1 & 0x80) || (b0 != 0x81 && b0 != 0x82))
            break;
        if (ln < 126) {
            start = pos + 6;
        } else if (ln == 126) {
            if (size - pos < 8)
                break;
            ln = ((Py_ssize_t)buf[pos + 2] << 8) | buf[pos + 3];
            start = pos + 8;
        } else {
            uint64_t l64 = 0;
            int k;
            if (size - pos < 14)
                break;
            for (k = 0; k < 8; k++)
                l64 = (l64 << 8) | buf[pos + 2 + k];
            if (l64 > (uint64_t)limit)
                break;
            ln = (Py_ssize_t)l64;
            start = pos + 14;
        }
        if (ln > limit || ln > size - start)
            break;
        PyObject *payload = PyBytes_FromStringAndSize(NULL, ln);
        if (payload == NULL)
            return -1;
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(payload);
        xor_mask(p, buf + start, ln, buf + start - 4);
        PyObject *msg;
        if (b0 == 0x81) {
            if (is_ascii(p, ln)) {
                if (raw) {
                    msg = payload;
                } else {
                    msg = PyUnicode_DecodeASCII((const char *)p, ln, NULL);
                    Py_DECREF(payload);
                }
            } else {
                PyObject *text = PyUnicode_DecodeUTF8((const char *)p, ln, NULL);
                if (text == NULL) {
                    /* invalid UTF-8: the Python code decides what that means here */
                    Py_DECREF(payload);
                    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                        return -1;
                    PyErr_Clear();
                    break;
                }
                if (raw) {
                    Py_DECREF(text);
                    msg = payload;
                } else {
                    Py_DECREF(payload);
                    msg = text;
                }
            }
        } else if (raw) {
            msg = PyMemoryView_FromObject(payload);
            Py_DECREF(payload);
        } else {
            msg = payload;
        }
        if (msg == NULL)
            return -1;
        int rc = PyList_Append(msgs, msg);
        Py_DECREF(msg);
        if (rc < 0)
            return -1;
        pos = start + ln;
    }
    return pos;
}

static PyObject *
ws_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* METH_FASTCALL: called once per read, so no argument tuple to build and parse */
    Py_buffer view;
    Py_ssize_t pos, limit;
    int raw;
    PyObject *msgs;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "ws_frames(buf, pos, limit, raw, msgs)");
        return NULL;
    }
    msgs = args[4];
    if (!PyList_Check(msgs)) {
        PyErr_SetString(PyExc_TypeError, "ws_frames: msgs must be a list");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    raw = PyObject_IsTrue(args[3]);
    if (raw < 0)
        return NULL;
    if (as_limit(args[2], &limit) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    pos = ws_parse((const unsigned char *)view.buf, view.len, pos, limit, raw, msgs);
    PyBuffer_Release(&view);
    return pos < 0 ? NULL : PyLong_FromSsize_t(pos);
}

static PyObject *
unmask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    if (!PyArg_ParseTuple(args, "y*y*:unmask", &data, &mask))
        return NULL;
    if (mask.len != 4) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, data.len);
    if (out != NULL)
        xor_mask((unsigned char *)PyBytes_AS_STRING(out), data.buf, data.len, mask.buf);
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return out;
}

/* One unmasked server frame around payload[0:n] (also the connection fast path's encoder). */
PyObject *
ws_frame_bytes(const char *payload, Py_ssize_t n, int op)
{
    Py_ssize_t hl = n < 126 ? 2 : (n < 65536 ? 4 : 10);
    PyObject *out = PyBytes_FromStringAndSize(NULL, hl + n);
    if (out != NULL) {
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
        p[0] = (unsigned char)op;
        if (hl == 2) {
            p[1] = (unsigned char)n;
        } else if (hl == 4) {
            p[1] = 126;
            p[2] = (unsigned char)(n >> 8);
            p[3] = (unsigned char)n;
        } else {
            int k;
            p[1] = 127;
            for (k = 0; k < 8; k++)
                p[2 + k] = (unsigned char)((uint64_t)n >> (56 - 8 * k));
        }
        memcpy(p + hl, payload, n);
    }
    return out;
}

static PyObject *
encode_frame(PyObject *self, PyObject *args)
{
    Py_buffer data;
    int op = 0x81;
    if (!PyArg_ParseTuple(args, "y*|i:encode_frame", &data, &op))
        return NULL;
    PyObject *out = ws_frame_bytes(data.buf, data.len, op);
    PyBuffer_Release(&data);
    return out;
}

/* ---- GatewayProtocol: cut and decode the packets of one read -------------------------------
 * gp_init(cls) records where GatewayPacket keeps its 10 __slots__ (member offsets, in header
 * order), so gp_split can fill new instances directly instead of running the Python __init__
 * (about 0.4 us per packet of the 0.53 the Python split cost). */
static PyTypeObject *gp_type = NULL;
static Py_ssize_t gp_offsets[10];
static const char *gp_names[10] = {"cmd", "local_ip", "local_port", "client_ip", "client_port",
                                   "connection_id", "flag", "gateway_port", "ext_data", "body"};

static PyObject *
gp_init(PyObject *self, PyObject *cls)
{
    int i;
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "gp_init(GatewayPacket)");
        return NULL;
    }
    for (i = 0; i < 10; i++) {
        PyObject *d = PyDict_GetItemString(((PyTypeObject *)cls)->tp_dict, gp_names[i]);
        if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type) {
            PyErr_Format(PyExc_TypeError, "GatewayPacket.%s is not a slot", gp_names[i]);
            return NULL;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "GatewayPacket.%s is not an object slot",
                         gp_names[i]);
            return NULL;
        }
        gp_offsets[i] = m->offset;
    }
    Py_XDECREF(gp_type);
    Py_INCREF(cls);
    gp_type = (PyTypeObject *)cls;
    Py_RETURN_NONE;
}

static inline uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint32_t be16(const unsigned char *p)
{
    return ((uint32_t)p[0] << 8) | p[1];
}

/* gp_split(buf, max_size) -> (packets, pos, bad_length): the complete packets from the start
 * of buf, the position after the last one, and -1, or the declared length of the first packet
 * that is over max_size or under 28 bytes (the caller raises PacketTooLarge for it). */
static PyObject *
gp_split(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t max_size, pos = 0, bad = -1;
    if (gp_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "gp_init() was not called");
        return NULL;
    }
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "gp_split(buf, max_size)");
        return NULL;
    }
    if (as_limit(args[1], &max_size) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t n = view.len;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto fail;
    while (n - pos >= 28) {
        const unsigned char *h = buf + pos;
        Py_ssize_t plen = (Py_ssize_t)be32(h);
        if (plen > max_size || plen < 28) {
            bad = plen;
            break;
        }
        Py_ssize_t end = pos + plen;
        if (end > n)
            break;
        Py_ssize_t e = pos + 28 + (Py_ssize_t)be32(h + 24);
        if (e > end || e < pos + 28)
            e = end;
        PyObject *vals[10];
        vals[0] = PyLong_FromUnsignedLong(h[4]);
        vals[1] = PyLong_FromUnsignedLong(be32(h + 5));
        vals[2] = PyLong_FromUnsignedLong(be16(h + 9));
        vals[3] = PyLong_FromUnsignedLong(be32(h + 11));
        vals[4] = PyLong_FromUnsignedLong(be16(h + 15));
        vals[5] = PyLong_FromUnsignedLong(be32(h + 17));
        vals[6] = PyLong_FromUnsignedLong(h[21]);
        vals[7] = PyLong_FromUnsignedLong(be16(h + 22));
        vals[8] = PyBytes_FromStringAndSize((const char *)buf + pos + 28, e - pos - 28);
        vals[9] = PyBytes_FromStringAndSize((const char *)buf + e, end - e);
        PyObject *pkt = gp_type->tp_alloc(gp_type, 0);
        int i, ok = pkt != NULL;
        for (i = 0; i < 10; i++)
            if (vals[i] == NULL)
                ok = 0;
        if (!ok) {
            for (i = 0; i < 10; i++)
                Py_XDECREF(vals[i]);
            Py_XDECREF(pkt);
            goto fail;
        }
        for (i = 0; i < 10; i++)
            *(PyObject **)((char *)pkt + gp_offsets[i]) = vals[i];   /* steals */
        int rc = PyList_Append(out, pkt);
        Py_DECREF(pkt);
        if (rc < 0)
            goto fail;
        pos = end;
    }
    PyBuffer_Release(&view);
    PyObject *res = Py_BuildValue("(Nnn)", out, pos, bad);
    return res;
fail:
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

/* ---- slot_maker(cls, names) -> maker; maker(*values) -> a cls instance --------------------
 * An object made per event (the BusinessWorker's Context) costs a Python __init__ frame that
 * stores each attribute; the maker allocates the instance and fills the named __slots__
 * directly, without running __init__ (so the class must not need one for these). */
typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t n;
    Py_ssize_t offs[32];
    vectorcallfunc vectorcall;
} SlotMaker;

static PyObject *
slot_maker_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    SlotMaker *m = (SlotMaker *)self;
    Py_ssize_t i, nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != m->n || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_Format(PyExc_TypeError, "%s maker takes %zd positional values", m->cls->tp_name,
                     m->n);
        return NULL;
    }
    PyObject *obj = m->cls->tp_alloc(m->cls, 0);
    if (obj == NULL)
        return NULL;
    for (i = 0; i < nargs; i++) {
        PyObject **slot = (PyObject **)((char *)obj + m->offs[i]);
        Py_XSETREF(*slot, Py_NewRef(args[i]));
    }
    return obj;
}

static void
slot_maker_dealloc(PyObject *self)
{
    Py_XDECREF(((SlotMaker *)self)->cls);
    PyObject_Free(self);
}

static PyTypeObject SlotMakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gwgevent._speedups.SlotMaker",
    .tp_basicsize = sizeof(SlotMaker),
    .tp_dealloc = slot_maker_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(SlotMaker, vectorcall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "maker(*values): a new instance with the maker's slots set to values.",
};

static PyObject *
slot_maker(PyObject *self, PyObject *args)
{
    PyObject *cls, *names;
    if (!PyArg_ParseTuple(args, "O!O!:slot_maker", &PyType_Type, &cls, &PyTuple_Type, &names))
        return NULL;
    Py_ssize_t i, n = PyTuple_GET_SIZE(names);
    if (n > 32) {
        PyErr_SetString(PyExc_ValueError, "slot_maker: at most 32 slots");
        return NULL;
    }
    if (((PyTypeObject *)cls)->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "slot_maker: the class must have __slots__ only");
        return NULL;
    }
    SlotMaker *m = PyObject_New(SlotMaker, &SlotMakerType);
    if (m == NULL)
        return NULL;
    m->cls = (PyTypeObject *)Py_NewRef(cls);
    m->n = n;
    m->vectorcall = slot_maker_call;
    for (i = 0; i < n; i++) {
        PyObject *d = _PyType_Lookup((PyTypeObject *)cls, PyTuple_GET_ITEM(names, i));
        if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "slot_maker: %R is not an object slot of %s",
                         PyTuple_GET_ITEM(names, i), ((PyTypeObject *)cls)->tp_name);
            Py_DECREF(m);
            return NULL;
        }
        m->offs[i] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    return (PyObject *)m;
}

/* client_packet(cmd, connection_id, flag, text) -> bytes: gateway_protocol.py_client_packet */
static PyObject *
client_packet(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyUnicode_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "client_packet(cmd, connection_id, flag, text: str)");
        return NULL;
    }
    unsigned long cmd = PyLong_AsUnsignedLongMask(args[0]);
    unsigned long cid = PyLong_AsUnsignedLongMask(args[1]);
    unsigned long flag = PyLong_AsUnsignedLongMask(args[2]);
    if (PyErr_Occurred())
        return NULL;
    const char *body;
    Py_ssize_t n;
    PyObject *utf8 = NULL;
    if (PyUnicode_IS_ASCII(args[3])) {
        body = (const char *)PyUnicode_DATA(args[3]);
        n = PyUnicode_GET_LENGTH(args[3]);
    } else {
        if ((utf8 = PyUnicode_AsUTF8String(args[3])) == NULL)
            return NULL;
        body = PyBytes_AS_STRING(utf8);
        n = PyBytes_GET_SIZE(utf8);
    }
    if (n > 0xFFFFFFFFLL - 28) {
        Py_XDECREF(utf8);
        PyErr_SetString(PyExc_OverflowError, "client_packet: body too large");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, 28 + n);
    if (out != NULL) {
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
        uint32_t len = (uint32_t)(28 + n);
        memset(p, 0, 28);
        p[0] = len >> 24; p[1] = len >> 16; p[2] = len >> 8; p[3] = len;
        p[4] = (unsigned char)cmd;
        p[17] = cid >> 24; p[18] = cid >> 16; p[19] = cid >> 8; p[20] = cid;
        p[21] = (unsigned char)(flag | 0x01);     /* FLAG_BODY_IS_SCALAR */
        memcpy(p + 28, body, n);
    }
    Py_XDECREF(utf8);
    return out;
}

/* event_packet(cmd, mid, flag, gateway_port, ext, body) -> bytes:
 * gateway_protocol.py_event_packet (mid: the client's 16 header bytes; ext, body: buffers) */
static PyObject *
event_packet(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer mid, ext, body;
    PyObject *out = NULL;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "event_packet(cmd, mid, flag, gateway_port, ext, body)");
        return NULL;
    }
    unsigned long cmd = PyLong_AsUnsignedLongMask(args[0]);
    unsigned long flag = PyLong_AsUnsignedLongMask(args[2]);
    unsigned long port = PyLong_AsUnsignedLongMask(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[1], &mid, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[4], &ext, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&mid);
        return NULL;
    }
    if (PyObject_GetBuffer(args[5], &body, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&mid);
        PyBuffer_Release(&ext);
        return NULL;
    }
    if (mid.len != 16 || 28 + ext.len + body.len > 0xFFFFFFFFLL) {
        PyErr_SetString(mid.len != 16 ? PyExc_ValueError : PyExc_OverflowError,
                        "event_packet: mid must be 16 bytes, the packet under 4 GB");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, 28 + ext.len + body.len);
    if (out != NULL) {
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
        uint32_t len = (uint32_t)(28 + ext.len + body.len), n_ext = (uint32_t)ext.len;
        p[0] = len >> 24; p[1] = len >> 16; p[2] = len >> 8; p[3] = len;
        p[4] = (unsigned char)cmd;
        memcpy(p + 5, mid.buf, 16);
        p[21] = (unsigned char)flag;
        p[22] = (unsigned char)(port >> 8); p[23] = (unsigned char)port;
        p[24] = n_ext >> 24; p[25] = n_ext >> 16; p[26] = n_ext >> 8; p[27] = n_ext;
        memcpy(p + 28, ext.buf, ext.len);
        memcpy(p + 28 + ext.len, body.buf, body.len);
    }
done:
    PyBuffer_Release(&mid);
    PyBuffer_Release(&ext);
    PyBuffer_Release(&body);
    return out;
}

/* ---- BusinessWorker: queue the client events of one read ------------------------------------
 * route_events(packets, names, gateways, gateway_info, queues, ready, deque) -> (n, control):
 * what gwgevent/cluster/event_routing.py's py_route_events does (the reference), in C. */
#define GP(pkt, i) (*(PyObject **)((char *)(pkt) + gp_offsets[i]))

static PyObject *
client_id_of(PyObject *prefix, PyObject *conn_id)
{
    unsigned long id = PyLong_AsUnsignedLongMask(conn_id) & 0xFFFFFFFFUL;
    if (id == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (!PyUnicode_CheckExact(prefix) || !PyUnicode_IS_ASCII(prefix))
        return PyUnicode_FromFormat("%U%08lx", prefix, id);
    Py_ssize_t n = PyUnicode_GET_LENGTH(prefix);
    PyObject *cid = PyUnicode_New(n + 8, 127);
    if (cid == NULL)
        return NULL;
    char *p = (char *)PyUnicode_DATA(cid);
    static const char hexd[] = "0123456789abcdef";
    int k;
    memcpy(p, PyUnicode_DATA(prefix), n);
    for (k = 7; k >= 0; k--, id >>= 4)
        p[n + k] = hexd[id & 15];
    return cid;
}

static PyObject *
route_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "route_events(packets, names, gateways, gateway_info, queues, ready, "
                        "deque)");
        return NULL;
    }
    PyObject *packets = args[0], *names = args[1], *gateways = args[2], *info = args[3];
    PyObject *queues = args[4], *ready = args[5], *deque_type = args[6];
    PyObject *control = NULL, *prefix = NULL, *last_ip = NULL, *last_port = NULL;
    PyObject *append = NULL;
    Py_ssize_t i, count = 0;
    if (!PyList_CheckExact(packets) || !PyDict_CheckExact(gateways) ||
        !PyDict_CheckExact(queues) || gp_type == NULL) {
        PyErr_SetString(PyExc_TypeError, "route_events: packets list, dicts, gp_init first");
        return NULL;
    }
    if ((control = PyList_New(0)) == NULL || (append = PyObject_GetAttrString(ready, "append"))
            == NULL)
        goto fail;
    for (i = 0; i < PyList_GET_SIZE(packets); i++) {
        PyObject *pkt = PyList_GET_ITEM(packets, i);
        if (Py_TYPE(pkt) != gp_type) {
            PyErr_SetString(PyExc_TypeError, "route_events: not a GatewayPacket");
            goto fail;
        }
        int known = PySequence_Contains(names, GP(pkt, 0));
        if (known < 0)
            goto fail;
        if (!known) {
            if (PyList_Append(control, pkt) < 0)
                goto fail;
            continue;
        }
        count++;
        PyObject *ip = GP(pkt, 1), *port = GP(pkt, 2);
        if (prefix == NULL || PyObject_RichCompareBool(ip, last_ip, Py_EQ) != 1 ||
            PyObject_RichCompareBool(port, last_port, Py_EQ) != 1) {
            /* one gateway per link: looked up once per read */
            PyObject *key = PyTuple_Pack(2, ip, port), *gw;
            if (key == NULL)
                goto fail;
            gw = PyDict_GetItemWithError(gateways, key);
            Py_DECREF(key);
            if (gw != NULL)
                Py_INCREF(gw);
            else if (PyErr_Occurred() || (gw = PyObject_CallFunctionObjArgs(info, ip, port, NULL))
                                             == NULL)
                goto fail;
            PyObject *pre = PySequence_GetItem(gw, 0);
            Py_DECREF(gw);
            if (pre == NULL)
                goto fail;
            Py_XSETREF(prefix, pre);
            Py_XSETREF(last_ip, Py_NewRef(ip));
            Py_XSETREF(last_port, Py_NewRef(port));
        }
        PyObject *cid = client_id_of(prefix, GP(pkt, 5)), *q, *r;
        if (cid == NULL)
            goto fail;
        q = PyDict_GetItemWithError(queues, cid);
        if (q != NULL) {
            /* that client's events are queued or running: keep the order */
            if (q == Py_None) {
                PyObject *one = PyTuple_Pack(1, pkt);
                PyObject *dq = one == NULL ? NULL : PyObject_CallOneArg(deque_type, one);
                Py_XDECREF(one);
                int rc = dq == NULL ? -1 : PyDict_SetItem(queues, cid, dq);
                Py_XDECREF(dq);
                Py_DECREF(cid);
                if (rc < 0)
                    goto fail;
            } else {
                Py_DECREF(cid);
                r = PyObject_CallMethod(q, "append", "O", pkt);
                if (r == NULL)
                    goto fail;
                Py_DECREF(r);
            }
            continue;
        }
        if (PyErr_Occurred() || PyDict_SetItem(queues, cid, Py_None) < 0) {
            Py_DECREF(cid);
            goto fail;
        }
        PyObject *pair = PyTuple_Pack(2, cid, pkt);
        Py_DECREF(cid);
        r = pair == NULL ? NULL : PyObject_CallOneArg(append, pair);
        Py_XDECREF(pair);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
    }
    Py_XDECREF(prefix);
    Py_XDECREF(last_ip);
    Py_XDECREF(last_port);
    Py_DECREF(append);
    return Py_BuildValue("(nN)", count, control);
fail:
    Py_XDECREF(prefix);
    Py_XDECREF(last_ip);
    Py_XDECREF(last_port);
    Py_XDECREF(append);
    Py_XDECREF(control);
    return NULL;
}

static PyMethodDef methods[] = {
    {"ws_frames", (PyCFunction)(void (*)(void))ws_frames, METH_FASTCALL,
     "ws_frames(buf, pos, limit, raw, msgs) -> pos: the websocket hot-path frame loop."},
    {"unmask", unmask, METH_VARARGS, "unmask(payload, mask) -> bytes (XOR with the 4-byte mask)."},
    {"encode_frame", encode_frame, METH_VARARGS,
     "encode_frame(payload, opcode_byte=0x81) -> bytes: one unmasked server frame."},
    {"gp_init", gp_init, METH_O, "gp_init(GatewayPacket): where gp_split puts the fields."},
    {"route_events", (PyCFunction)(void (*)(void))route_events, METH_FASTCALL,
     "route_events(packets, names, gateways, gateway_info, queues, ready, deque) -> "
     "(events, control): the BusinessWorker's event queueing (cluster/event_routing.py)."},
    {"slot_maker", slot_maker, METH_VARARGS,
     "slot_maker(cls, names) -> maker: maker(*values) makes a cls with those slots set."},
    {"event_packet", (PyCFunction)(void (*)(void))event_packet, METH_FASTCALL,
     "event_packet(cmd, mid, flag, gateway_port, ext, body) -> bytes: a G->W event packet."},
    {"client_packet", (PyCFunction)(void (*)(void))client_packet, METH_FASTCALL,
     "client_packet(cmd, connection_id, flag, text) -> bytes: a text message for one client."},
    {"gp_split", (PyCFunction)(void (*)(void))gp_split, METH_FASTCALL,
     "gp_split(buf, max_size) -> (packets, pos, bad_length): GatewayProtocol split_decode."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gwgevent._speedups",
    "Optional C versions of the websocket codec's hot loops (pure-Python fallback exists).",
    -1, methods
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&SlotMakerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && conn_module_init(m) < 0)
        Py_CLEAR(m);
    return m;
}
