/*
 * wsload.c - an epoll websocket load generator for the gwgevent benchmarks.
 *
 * One thread, one epoll set, every socket non-blocking and registered once (edge-triggered).
 * No dependencies beyond libc:  gcc -O2 -o wsload wsload.c
 *
 * Modes (--mode):
 *   echo       N connections keep K messages in flight each (closed loop): every echo received
 *              sends the next message. Latency = receipt time - send time carried in the payload.
 *   send       N connections send at a fixed total --rate (open loop); anything received back
 *              is counted and timed like echo (use for "one sender, many receivers").
 *   listen     N connections only receive: frames are counted and timed from the timestamp in
 *              their payload (the sender may be another process on the same host).
 *   handshake  C concurrent slots: connect + websocket handshake + close, as fast as possible.
 *   idle       open N handshaken connections, print "ready", hold them until stdin closes,
 *              a signal arrives, or --duration seconds pass.
 *
 * Message payloads start with the send time (CLOCK_MONOTONIC, ns):
 *   binary frames: 8 bytes, little-endian uint64;
 *   text frames:   16 lowercase hex digits (text frames must be valid UTF-8).
 * The rest of the payload is filler ('a'..'z'). Client frames are masked with a fresh mask each.
 *
 * Frames without a plausible timestamp (welcome messages, notices) are counted as "other" and
 * otherwise ignored: an echo-mode connection only sends its next message for a timed echo.
 *
 * Every connection can send a --login text frame right after its handshake ("%i" in it is
 * replaced by the connection index) and, with --login-wait, is only "ready" once the server has
 * sent a frame back (that frame is not counted); --login-wait alone waits for the server's
 * first frame (a hello sent from on_connect). This is what cluster benches need: clients that
 * join a group or bind a uid before the measurement starts. Cluster recipes:
 *   echo through gateway + worker:  wsload --mode echo -c 100 -k 10 --port GATEWAY_PORT
 *                                   --cpu-pid GATEWAY_PID,WORKER_PID
 *   group broadcast to 10k:         wsload --listen -c 5000 --src 127.0.0.2 --login '{"join":"g"}'
 *                                   --login-wait -d 10   (x2 processes, after "ready" from all:)
 *                                   wsload --mode send -c 1 --rate 100 -d 12
 * The HTTP upgrade request is minimal unless --browser (a browser's usual headers and a cookie)
 * or --header 'Name: value' add to it; its key is fixed so the 101 reply is checked (including
 * Sec-WebSocket-Accept) without SHA-1 in the client.
 *
 * Output: progress and errors on stderr; ONE result line on stdout, `key=value` tokens:
 *   wsload mode=echo conns=100 inflight=10 size=64 duration_s=5.000 msgs=... msgs_per_s=...
 *          p50_us=... p90_us=... p99_us=... p999_us=... max_us=... errors=0 lost=0 other=0
 *          client_cpu_pct=... [server_cpu_pct=... server_cpu_us_per_msg=... server_user_pct=...
 *          server_sys_pct=... server_user_us_per_msg=... server_sys_us_per_msg=...]
 * (handshake mode: handshakes=... handshakes_per_s=..., latencies = connect() to 101 received,
 *  server_cpu_us_per_handshake=...).
 * With --cpu-pid PID[,PID...] the utime+stime of those processes (from /proc/PID/stat) is read
 * at the exact edges of the measured window, so server CPU per message needs no guessing.
 * idle/listen/send modes also print a line "ready conns=N" (flushed) once all are connected.
 * user and sys are utime and stime apart (their sum is server_cpu_...; the kernel splits the
 * exact runtime between them in proportion to the clock ticks that found the process in each
 * mode). With several --cpu-pid processes, server_cpu_us_per_msg_each=A,B,... gives each one's
 * share, and server_user_us_per_msg_each / server_sys_us_per_msg_each its split.
 * idle/listen modes read command lines on stdin: "reset" starts a new measured window (latency
 * histogram and counters from zero), "stats" prints one line "stats received=N other=N lost=N
 * errors=N ready=N p50_us=... p90_us=... p99_us=... max_us=..." (since the last reset); a
 * driver can so keep 10 000 receivers connected over several measurements.
 *
 * Holding many connections (bench/scale_1m.py): --retries N lets a connection whose connect or
 * handshake failed (refused, reset, closed, timed out by --setup-timeout) be tried again up to N
 * times, --retry-delay S apart; one that still fails is counted (failed=, in the ready line)
 * instead of ending the run. --connect-rate R caps the connection attempts per second (new and
 * retried), --concurrency the attempts in progress. In idle/listen modes the stdin command
 * "expect TOKEN" (answered "expecting conns=N") makes every open connection count the text
 * frames whose payload is exactly TOKEN; "count" prints "count once=N zero=N multi=N wrong=N
 * lost=N failed=N ready=N first_ns=T last_ns=T": open connections that got it once, never, more
 * than once, other frames received meanwhile, and the CLOCK_MONOTONIC times of the first and
 * last matching receipt. --close rst also releases idle/listen connections with a reset (no
 * TIME_WAIT left behind).
 *
 * Exit status: 0 ok, 1 usage, 2 setup failed (connections could not be opened/handshaken),
 * 3 errors during the run (connections lost, bad frames); the result line is printed anyway.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------ options */

enum mode { M_ECHO, M_SEND, M_LISTEN, M_HANDSHAKE, M_IDLE };
static const char *mode_names[] = {"echo", "send", "listen", "handshake", "idle"};

enum close_how { CLOSE_FIN, CLOSE_RST, CLOSE_WS };

#define MAX_SRC 256
#define MAX_CPU_PIDS 16

static struct {
    enum mode mode;
    const char *host;
    int port;
    const char *path;
    struct in_addr src[MAX_SRC];
    int nsrc;
    int conns;          /* connections (handshake mode: concurrent slots) */
    int inflight;       /* echo: messages in flight per connection */
    int size;           /* payload bytes */
    int binary;         /* binary frames instead of text */
    double warmup;      /* seconds before the measured window */
    double duration;    /* measured window, seconds (idle/listen: 0 = until stdin closes) */
    double rate;        /* send mode: messages per second, all connections together */
    int concurrency;    /* connections being opened at once */
    double setup_timeout;
    const char *login;
    int login_wait;
    char *headers;      /* extra request header lines, each ending in \r\n */
    size_t headers_len;
    enum close_how close_how;
    pid_t cpu_pids[MAX_CPU_PIDS];
    int ncpu_pids;
    int quiet;
    int retries;        /* setup failures retried per connection (0: a failure ends the run) */
    double retry_delay; /* seconds before a failed connection is tried again */
    double connect_rate;/* connection attempts per second (0: only --concurrency bounds them) */
} o = {
    .mode = M_ECHO, .host = "127.0.0.1", .port = 8282, .path = "/", .conns = 100,
    .inflight = 10, .size = 64, .warmup = 2.0, .duration = 5.0, .rate = 1000.0,
    .concurrency = 256, .setup_timeout = 60.0, .close_how = CLOSE_FIN, .retry_delay = 0.5,
};

/* ------------------------------------------------------------------ helpers */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void msg(const char *fmt, ...)
{
    if (o.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("wsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p && n)
        die(2, "out of memory");
    return p;
}

static uint32_t rng_state = 0x9e3779b9u;
static inline uint32_t rnd32(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

/* ------------------------------------------------------------------ latency histogram */
/* log-linear: exact below 256 ns, then 128 sub-buckets per power of two (< 0.8 % error) */

#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS (2 * H_SUB + 64 * H_SUB)

struct hist {
    uint64_t n[H_BUCKETS];
    uint64_t count, max;
};

static inline unsigned h_index(uint64_t v)
{
    if (v < 2 * H_SUB)
        return (unsigned)v;
    unsigned msb = 63 - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - H_SUB_BITS;
    return 2 * H_SUB + (shift - 1) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

static uint64_t h_value(unsigned i)   /* middle of bucket i */
{
    if (i < 2 * H_SUB)
        return i;
    unsigned shift = (i - 2 * H_SUB) / H_SUB + 1;
    uint64_t top = (i - 2 * H_SUB) % H_SUB + H_SUB;
    return (top << shift) + ((1ull << shift) >> 1);
}

static inline void h_add(struct hist *h, uint64_t v)
{
    h->n[h_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

static double h_pct_us(const struct hist *h, double q)
{
    if (!h->count)
        return 0.0;
    uint64_t want = (uint64_t)(q * (double)h->count + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want) {
            uint64_t v = h_value(i);
            return (double)(v > h->max ? h->max : v) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

/* ------------------------------------------------------------------ CPU accounting */

/* utime and stime of a process (all its threads), seconds; -1 on error. Their sum is the
 * scheduler's exact runtime; the kernel splits it between user and system in proportion to
 * the clock ticks that found the process in either mode (tick-based accounting). */
static int proc_cpu_split(pid_t pid, double *user, double *sys)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut = 0, st = 0;
    /* after ")": field 3 (state) ... field 14 utime, 15 stime */
    for (int field = 3; field <= 15; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return -1;
        if (field == 14)
            ut = strtoull(p, NULL, 10);
        if (field == 15)
            st = strtoull(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
    }
    double tck = (double)sysconf(_SC_CLK_TCK);
    *user = (double)ut / tck;
    *sys = (double)st / tck;
    return 0;
}

/* sums over --cpu-pid (user, system, both); eu[i]/es[i] (when given) get the i-th pid's */
static double servers_cpu_s(double *eu, double *es, double *user, double *sys)
{
    double tu = 0, ts = 0;
    for (int i = 0; i < o.ncpu_pids; i++) {
        double u, s;
        if (proc_cpu_split(o.cpu_pids[i], &u, &s) < 0)
            return -1;
        if (eu)
            eu[i] = u;
        if (es)
            es[i] = s;
        tu += u;
        ts += s;
    }
    if (user)
        *user = tu;
    if (sys)
        *sys = ts;
    return tu + ts;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ connections */

enum cstate { C_FREE, C_CONNECTING, C_HANDSHAKE, C_LOGIN, C_OPEN, C_CLOSING };

struct conn {
    int fd;
    uint8_t state;
    uint8_t want_write;     /* send buffer has data the kernel did not take yet */
    uint8_t tries;          /* setup attempts that failed (--retries) */
    uint8_t hits;           /* frames equal to the "expect" token (saturates at 255) */
    uint32_t idx;
    uint32_t inflight;
    uint32_t gen;           /* bumped on close: tells a handler its socket went away */
    uint64_t t_start;       /* connect() time, for handshake latency */
    uint64_t frag_ts;       /* timestamp of a fragmented message being received */
    char *carry;            /* unparsed input (partial frame / partial HTTP reply) */
    uint32_t carry_len, carry_cap;
    char *wq;               /* output the kernel did not accept yet */
    uint32_t wq_off, wq_len, wq_cap;
};

static struct conn *conns;
static int epfd = -1;

/* run state */
static struct {
    uint64_t t0, t_ready, t_window, t_end;
    int nready;          /* connections handshaken (and logged in) */
    int opened;          /* connections started (open modes) */
    int opening;         /* connections between connect() and ready */
    int all_ready, ready_pending;
    int measuring, finished;
    int stdin_closed;
    uint64_t src_rr;
    /* counters: totals; window figures are differences of snapshots */
    uint64_t received, sent, handshakes, errors, lost, bad, other;
    uint64_t w_received, w_sent, w_handshakes;
    double w_srv_cpu, w_cli_cpu;
    double w_srv_user, w_srv_sys;       /* the same window, user and system time apart */
    double w_srv_each[MAX_CPU_PIDS];    /* per --cpu-pid process, same window */
    double w_srv_each_user[MAX_CPU_PIDS], w_srv_each_sys[MAX_CPU_PIDS];
    struct hist hist;
    uint64_t send_due_base;   /* send mode */
    int failed;               /* connections given up after --retries */
    uint64_t retried, setup_errors;
    double tokens;            /* --connect-rate bucket */
    uint64_t tokens_at;
} R;

/* connections waiting for their retry, in due order (the delay is constant): a ring */
static uint32_t *rq_idx;
static uint64_t *rq_due;
static uint32_t rq_head, rq_len;

/* the "expect" token and what its receipt looked like */
static struct {
    char tok[256];
    size_t len;
    int on;
    uint64_t first, last, wrong;
} X;

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { (void)sig; got_signal = 1; }

static struct sockaddr_in server_addr;
static char *request;       /* the HTTP upgrade request, same for every connection */
static size_t request_len;
/* a fixed key: its accept value is known, so replies are verified without SHA-1 */
static const char WS_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char WS_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

#define RBUF_SIZE (1 << 20)
#define OBUF_SIZE (1 << 20)
static char *rbuf;          /* shared receive buffer */
static char *obuf;          /* shared output batch of the connection being processed */
static size_t olen;

static void conn_open(struct conn *c);
static void conn_close(struct conn *c, int rst);
static void conn_write(struct conn *c, const char *data, size_t len);
static void handshake_slot_done(struct conn *c);

static void in_window_snapshot(int start)
{
    double eu[MAX_CPU_PIDS] = {0}, es[MAX_CPU_PIDS] = {0}, su = 0, ss = 0;
    double srv = o.ncpu_pids ? servers_cpu_s(eu, es, &su, &ss) : 0, cli = self_cpu_s();
    if (start) {
        R.measuring = 1;
        R.t_window = now_ns();
        R.w_received = R.received;
        R.w_sent = R.sent;
        R.w_handshakes = R.handshakes;
        R.w_srv_cpu = srv;
        R.w_srv_user = su;
        R.w_srv_sys = ss;
        for (int i = 0; i < o.ncpu_pids; i++) {
            R.w_srv_each[i] = eu[i] + es[i];
            R.w_srv_each_user[i] = eu[i];
            R.w_srv_each_sys[i] = es[i];
        }
        R.w_cli_cpu = cli;
        memset(&R.hist, 0, sizeof R.hist);
    } else {
        R.measuring = 0;
        R.finished = 1;
        R.t_end = now_ns();
        R.w_received = R.received - R.w_received;
        R.w_sent = R.sent - R.w_sent;
        R.w_handshakes = R.handshakes - R.w_handshakes;
        R.w_srv_cpu = o.ncpu_pids ? srv - R.w_srv_cpu : 0;
        R.w_srv_user = o.ncpu_pids ? su - R.w_srv_user : 0;
        R.w_srv_sys = o.ncpu_pids ? ss - R.w_srv_sys : 0;
        for (int i = 0; i < o.ncpu_pids; i++) {
            R.w_srv_each[i] = eu[i] + es[i] - R.w_srv_each[i];
            R.w_srv_each_user[i] = eu[i] - R.w_srv_each_user[i];
            R.w_srv_each_sys[i] = es[i] - R.w_srv_each_sys[i];
        }
        R.w_cli_cpu = cli - R.w_cli_cpu;
    }
}

/* ------------------------------------------------------------------ frames */

static inline uint64_t payload_ts(const unsigned char *p, uint64_t n, int opcode)
{
    uint64_t ts = 0;
    if (opcode == 2) {
        if (n >= 8)
            for (int i = 7; i >= 0; i--)
                ts = (ts << 8) | p[i];
        return ts;
    }
    if (n < 16)
        return 0;
    for (int i = 0; i < 16; i++) {
        unsigned ch = p[i];
        unsigned d;
        if (ch - '0' < 10)
            d = ch - '0';
        else if (ch - 'a' < 6)
            d = ch - 'a' + 10;
        else
            return 0;
        ts = (ts << 4) | d;
    }
    return ts;
}

/* Append one masked client frame to obuf; payload = timestamp + filler (or `text`). */
static void frame_out(int opcode, const char *text, size_t n)
{
    if (olen + n + 14 > OBUF_SIZE)
        die(2, "output batch overflow (payload too large)");
    unsigned char *f = (unsigned char *)obuf + olen;
    size_t h = 2;
    f[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[1] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(n >> 8);
        f[3] = (unsigned char)n;
        h = 4;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        h = 10;
    }
    uint32_t m = rnd32();
    unsigned char mask[4] = {(unsigned char)m, (unsigned char)(m >> 8), (unsigned char)(m >> 16),
                             (unsigned char)(m >> 24)};
    memcpy(f + h, mask, 4);
    unsigned char *p = f + h + 4;
    if (text) {
        memcpy(p, text, n);
    } else {
        uint64_t ts = now_ns();
        size_t i = 0;
        if (opcode == 2) {
            for (; i < 8 && i < n; i++)
                p[i] = (unsigned char)(ts >> (8 * i));
        } else {
            static const char hex[] = "0123456789abcdef";
            for (; i < 16 && i < n; i++)
                p[i] = (unsigned char)hex[(ts >> (60 - 4 * i)) & 15];
        }
        for (; i < n; i++)
            p[i] = (unsigned char)('a' + i % 26);
    }
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[i & 3];
    olen += h + 4 + n;
}

static void send_message(struct conn *c)
{
    frame_out(o.binary ? 2 : 1, NULL, (size_t)o.size);
    c->inflight++;
    R.sent++;
}

static void send_login(struct conn *c)
{
    char text[4096];
    size_t n = 0;
    for (const char *s = o.login; *s && n < sizeof text - 16; s++) {
        if (s[0] == '%' && s[1] == 'i') {
            n += (size_t)snprintf(text + n, sizeof text - n, "%u", c->idx);
            s++;
        } else {
            text[n++] = *s;
        }
    }
    frame_out(1, text, n);
}

static void control_out(int opcode, const unsigned char *payload, size_t n)
{
    frame_out(opcode, (const char *)payload, n);
}

/* ------------------------------------------------------------------ readiness */

static void all_ready(void)
{
    R.all_ready = 1;
    R.t_ready = now_ns();
    msg("%d connection(s) ready in %.3f s (%d failed, %llu retries)", o.conns - R.failed,
        (double)(R.t_ready - R.t0) / 1e9, R.failed, (unsigned long long)R.retried);
    if (o.mode == M_IDLE || o.mode == M_LISTEN || o.mode == M_SEND) {
        printf("ready conns=%d failed=%d retried=%llu\n", o.conns - R.failed, R.failed,
               (unsigned long long)R.retried);
        fflush(stdout);
    }
    if (o.mode == M_ECHO) {
        for (int i = 0; i < o.conns; i++) {
            struct conn *c = &conns[i];
            olen = 0;
            for (int k = 0; k < o.inflight; k++)
                send_message(c);
            conn_write(c, obuf, olen);
            olen = 0;
        }
    }
    if (o.mode == M_ECHO || o.mode == M_SEND)
        R.t_window = R.t_ready + (uint64_t)(o.warmup * 1e9);   /* window start (planned) */
    if (o.mode == M_IDLE && o.duration > 0)
        R.t_window = R.t_ready;
    R.send_due_base = R.t_ready;
}

static void conn_ready(struct conn *c)
{
    c->state = C_OPEN;
    R.nready++;
    R.opening--;
    if (R.nready + R.failed == o.conns)
        R.ready_pending = 1;     /* all_ready() runs from the main loop, outside any batch */
}

/* --connect-rate: one token per attempt; the bucket holds at most a tenth of a second's */
static int rate_ok(uint64_t now)
{
    if (o.connect_rate <= 0)
        return 1;
    double cap = o.connect_rate / 10.0 < 1.0 ? 1.0 : o.connect_rate / 10.0;
    if (!R.tokens_at)
        R.tokens = 1.0;
    else
        R.tokens += (double)(now - R.tokens_at) * o.connect_rate / 1e9;
    R.tokens_at = now;
    if (R.tokens > cap)
        R.tokens = cap;
    if (R.tokens < 1.0)
        return 0;
    R.tokens -= 1.0;
    return 1;
}

static void open_more(void)
{
    uint64_t now = now_ns();
    while (R.opening < o.concurrency) {
        struct conn *c;
        int retry = rq_len && rq_due[rq_head] <= now;
        if (!retry && R.opened >= o.conns)
            break;
        if (!rate_ok(now))
            break;
        if (retry) {
            c = &conns[rq_idx[rq_head]];
            rq_head = (rq_head + 1) % (uint32_t)o.conns;
            rq_len--;
        } else {
            c = &conns[R.opened++];
        }
        R.opening++;
        conn_open(c);
    }
}

/* --retries: a connection failed before it was ready; try it again later or give it up */
static void setup_failed(struct conn *c, const char *why)
{
    R.setup_errors++;
    if (R.setup_errors <= 5)
        msg("connection %u failed during setup (attempt %u): %s", c->idx, c->tries + 1u, why);
    conn_close(c, 1);
    R.opening--;
    if (c->tries < o.retries) {
        c->tries++;
        R.retried++;
        uint32_t at = (rq_head + rq_len) % (uint32_t)o.conns;
        rq_idx[at] = c->idx;
        rq_due[at] = now_ns() + (uint64_t)(o.retry_delay * 1e9);
        rq_len++;
        return;
    }
    R.failed++;
    if (R.failed <= 5)
        msg("connection %u given up after %u attempts: %s", c->idx, c->tries + 1u, why);
    if (R.nready + R.failed == o.conns)
        R.ready_pending = 1;
}

/* --setup-timeout with --retries: whatever is not ready now counts as failed */
static void setup_give_up(void)
{
    int n = 0;
    for (int i = 0; i < o.conns; i++) {
        struct conn *c = &conns[i];
        if (c->state == C_OPEN)
            continue;
        if (c->fd >= 0)
            conn_close(c, 1);
        n++;
    }
    rq_len = 0;
    R.opened = o.conns;
    R.opening = 0;
    R.failed = n;
    msg("setup timed out: %d connection(s) not ready, counted as failed", n);
    R.ready_pending = 1;
}

/* a connection failed or was closed by the server */
static void conn_lost(struct conn *c, const char *why)
{
    int was = c->state;
    if (o.mode == M_HANDSHAKE) {
        R.errors++;
        if (R.errors <= 5)
            msg("handshake slot %u: %s", c->idx, why);
        conn_close(c, 1);
        if (!R.finished)
            conn_open(c);
        return;
    }
    if (was == C_CLOSING) {
        conn_close(c, 0);
        return;
    }
    if (was != C_OPEN) {
        if (o.retries && !R.all_ready) {
            setup_failed(c, why);
            return;
        }
        die(2, "connection %u could not be set up: %s (%d of %d ready)", c->idx, why,
            R.nready, o.conns);
    }
    R.lost++;
    if (R.lost <= 5)
        msg("connection %u lost: %s", c->idx, why);
    conn_close(c, 1);
}

/* ------------------------------------------------------------------ socket plumbing */

static void conn_open(struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die(2, "socket(): %s", strerror(errno));
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o.nsrc) {
        /* port chosen at connect() from the full 4-tuple: TIME_WAIT ports can be reused */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr = o.src[R.src_rr++ % (unsigned)o.nsrc];
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die(2, "bind(%s): %s", inet_ntoa(sa.sin_addr), strerror(errno));
    }
    c->state = C_CONNECTING;
    c->t_start = now_ns();
    c->carry_len = 0;
    c->wq_len = c->wq_off = 0;
    c->want_write = 0;
    c->inflight = 0;
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        c->fd = -1;
        c->state = C_FREE;
        if (o.mode == M_HANDSHAKE && (e == EADDRNOTAVAIL || e == ECONNREFUSED || e == EAGAIN)) {
            R.errors++;
            if (R.errors <= 5)
                msg("connect(): %s", strerror(e));
            if (R.errors > 1000000)
                die(2, "too many connect errors");
            /* retry later from the main loop */
            return;
        }
        if (o.retries && o.mode != M_HANDSHAKE) {
            setup_failed(c, strerror(e));     /* the socket is closed already */
            return;
        }
        die(2, "connect(): %s", strerror(e));
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u32 = c->idx};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die(2, "epoll_ctl: %s", strerror(errno));
}

static void conn_close(struct conn *c, int rst)
{
    if (c->fd < 0)
        return;
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd);   /* also removes it from the epoll set */
    c->fd = -1;
    c->gen++;
    c->state = C_FREE;
    c->carry_len = 0;
    c->wq_len = c->wq_off = 0;
}

static void conn_flush(struct conn *c)
{
    while (c->wq_off < c->wq_len) {
        ssize_t n = send(c->fd, c->wq + c->wq_off, c->wq_len - c->wq_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_lost(c, strerror(errno));
            return;
        }
        c->wq_off += (uint32_t)n;
    }
    c->wq_off = c->wq_len = 0;
    c->want_write = 0;
}

static void conn_write(struct conn *c, const char *data, size_t len)
{
    if (!len || c->fd < 0)
        return;
    if (!c->want_write) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_lost(c, strerror(errno));
                return;
            }
            n = 0;
        }
        if ((size_t)n == len)
            return;
        data += n;
        len -= (size_t)n;
        c->want_write = 1;   /* EPOLLOUT (edge) will flush the rest */
    }
    if (c->wq_len + len > c->wq_cap) {
        c->wq_cap = (uint32_t)((c->wq_len + len) * 2);
        c->wq = xrealloc(c->wq, c->wq_cap);
    }
    memcpy(c->wq + c->wq_len, data, len);
    c->wq_len += (uint32_t)len;
}

/* ------------------------------------------------------------------ input */

static void on_message(struct conn *c, uint64_t ts, uint64_t now)
{
    if (c->state == C_LOGIN) {          /* the login answer: not counted */
        conn_ready(c);
        return;
    }
    /* frames without a plausible timestamp (welcome messages, notices...) are only counted */
    if (!ts || ts > now || now - ts > 60000000000ull) {
        R.other++;
        return;
    }
    R.received++;
    if (R.measuring)
        h_add(&R.hist, now - ts);
    if (c->inflight)
        c->inflight--;
    if (o.mode == M_ECHO && R.all_ready && !R.finished)
        send_message(c);
    if (o.mode == M_LISTEN && !R.t_window && !R.measuring)   /* first message starts the clock */
        R.t_window = now + (uint64_t)(o.warmup * 1e9);
}

/* Parse server frames in buf[0..len); return bytes consumed, or -1 if c was closed. */
static ssize_t parse_frames(struct conn *c, unsigned char *buf, size_t len)
{
    size_t pos = 0;
    uint64_t now = now_ns();
    while (len - pos >= 2) {
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        uint64_t n = b1 & 0x7f;
        size_t h = 2;
        if (b1 & 0x80) {
            R.bad++;
            conn_lost(c, "masked frame from the server");
            return -1;
        }
        if (n == 126) {
            if (len - pos < 4)
                break;
            n = ((uint64_t)buf[pos + 2] << 8) | buf[pos + 3];
            h = 4;
        } else if (n == 127) {
            if (len - pos < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = (n << 8) | buf[pos + 2 + i];
            h = 10;
        }
        if (len - pos - h < n)
            break;
        unsigned char *p = buf + pos + h;
        int op = b0 & 0x0f, fin = b0 & 0x80;
        pos += h + n;
        switch (op) {
        case 1:
        case 2:
            if (X.on && fin && c->state == C_OPEN) {
                if (op == 1 && n == X.len && !memcmp(p, X.tok, X.len)) {
                    if (c->hits < 255)
                        c->hits++;
                    if (!X.first)
                        X.first = now;
                    X.last = now;
                } else {
                    X.wrong++;
                }
                break;
            }
            if (fin)
                on_message(c, payload_ts(p, n, op), now);
            else
                c->frag_ts = payload_ts(p, n, op);
            break;
        case 0:
            if (fin)
                on_message(c, c->frag_ts, now);
            break;
        case 8:     /* close */
            if (c->state == C_CLOSING) {
                conn_close(c, 0);
                if (o.mode == M_HANDSHAKE)
                    handshake_slot_done(c);
                return -1;
            }
            conn_lost(c, "close frame from the server");
            return -1;
        case 9:     /* ping -> pong */
            control_out(0x0a, p, (size_t)n);
            break;
        case 10:
            break;
        default:
            R.bad++;
            conn_lost(c, "unknown opcode from the server");
            return -1;
        }
        if (c->fd < 0)
            return -1;
    }
    return (ssize_t)pos;
}

static void handshake_slot_done(struct conn *c)
{
    if (!R.finished) {
        conn_open(c);
    }
}

/* The 101 reply arrived in buf[0..end) (end = after the blank line). */
static int check_reply(struct conn *c, const char *buf, size_t end)
{
    if (end < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(buf, '\r', end);
        char line[128];
        size_t l = eol ? (size_t)(eol - buf) : end;
        if (l > sizeof line - 1)
            l = sizeof line - 1;
        memcpy(line, buf, l);
        line[l] = 0;
        R.bad++;
        conn_lost(c, line[0] ? line : "bad handshake reply");
        return -1;
    }
    if (!memmem(buf, end, WS_ACCEPT, sizeof WS_ACCEPT - 1)) {
        R.bad++;
        conn_lost(c, "wrong Sec-WebSocket-Accept");
        return -1;
    }
    return 0;
}

static void handshake_done(struct conn *c, uint64_t now)
{
    if (o.mode == M_HANDSHAKE) {
        R.handshakes++;
        if (R.measuring)
            h_add(&R.hist, now - c->t_start);
        if (o.close_how == CLOSE_WS) {
            static const unsigned char code[2] = {0x03, 0xe8};
            olen = 0;
            control_out(0x08, code, 2);
            c->state = C_CLOSING;
            conn_write(c, obuf, olen);
            olen = 0;
            return;
        }
        conn_close(c, o.close_how == CLOSE_RST);
        handshake_slot_done(c);
        return;
    }
    if (o.login)
        send_login(c);
    if (o.login_wait) {     /* without --login: wait for the server's first frame (a hello) */
        c->state = C_LOGIN;
        return;
    }
    conn_ready(c);
}

/* New bytes for c: handshake reply and/or frames. Replies are batched in obuf, sent once. */
static void on_data(struct conn *c, const char *data, size_t len)
{
    char *buf;
    if (c->carry_len) {
        if (c->carry_len + len > c->carry_cap) {
            c->carry_cap = (uint32_t)((c->carry_len + len) * 2);
            c->carry = xrealloc(c->carry, c->carry_cap);
        }
        memcpy(c->carry + c->carry_len, data, len);
        len += c->carry_len;
        c->carry_len = 0;
        buf = c->carry;
    } else {
        buf = (char *)data;
    }
    size_t pos = 0;
    olen = 0;
    if (c->state == C_HANDSHAKE) {
        char *e = memmem(buf, len, "\r\n\r\n", 4);
        if (!e) {
            if (len > 16384) {
                conn_lost(c, "handshake reply too long");
                return;
            }
            goto keep;
        }
        size_t end = (size_t)(e - buf) + 4;
        if (check_reply(c, buf, end) < 0)
            return;
        pos = end;
        handshake_done(c, now_ns());
        if (c->fd < 0 || o.mode == M_HANDSHAKE)
            return;
    }
    if (pos < len) {
        ssize_t used = parse_frames(c, (unsigned char *)buf + pos, len - pos);
        if (used < 0)
            return;
        pos += (size_t)used;
    }
keep:
    if (pos < len) {
        size_t rest = len - pos;
        if (buf == c->carry) {
            memmove(c->carry, c->carry + pos, rest);
        } else {
            if (rest > c->carry_cap) {
                c->carry_cap = (uint32_t)(rest < 256 ? 256 : rest * 2);
                c->carry = xrealloc(c->carry, c->carry_cap);
            }
            memcpy(c->carry, buf + pos, rest);
        }
        c->carry_len = (uint32_t)rest;
    }
    if (olen) {
        conn_write(c, obuf, olen);
        olen = 0;
    }
}

static void on_readable(struct conn *c, int hup)
{
    uint32_t gen = c->gen;
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, RBUF_SIZE, 0);
        if (n > 0) {
            on_data(c, rbuf, (size_t)n);
            if (c->gen != gen)      /* closed (and maybe reopened) while handling the data */
                return;
            /* a short read drained the socket: new data raises a new edge. After a hangup
               no edge will come again, so read on until EOF. */
            if (n < RBUF_SIZE && !hup)
                return;
            continue;
        }
        if (n == 0) {
            if (c->state == C_CLOSING) {
                conn_close(c, 0);
                if (o.mode == M_HANDSHAKE)
                    handshake_slot_done(c);
                return;
            }
            conn_lost(c, "closed by the server");
            return;
        }
        if (errno == EAGAIN || errno == EINTR)
            return;
        conn_lost(c, strerror(errno));
        return;
    }
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    uint32_t gen = c->gen;
    if (c->state == C_CONNECTING) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            conn_lost(c, err ? strerror(err) : "connect failed");
            return;
        }
        if (!(ev & EPOLLOUT))
            return;
        c->state = C_HANDSHAKE;
        conn_write(c, request, request_len);
        if (c->gen != gen)
            return;
    } else if (ev & EPOLLOUT && c->want_write) {
        conn_flush(c);
        if (c->gen != gen)
            return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        on_readable(c, (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
}

/* ------------------------------------------------------------------ main loop */

static void send_mode_tick(uint64_t now)
{
    /* open loop: messages due since ready at --rate, spread round-robin over connections */
    if (!R.all_ready || R.finished)
        return;
    uint64_t due = (uint64_t)((double)(now - R.send_due_base) * o.rate / 1e9);
    static uint64_t issued, rr;
    if (due <= issued)
        return;
    uint64_t todo = due - issued;
    issued = due;
    uint64_t per = todo / (uint64_t)o.conns, extra = todo % (uint64_t)o.conns;
    for (int i = 0; i < o.conns; i++) {
        struct conn *c = &conns[(rr + (uint64_t)i) % (uint64_t)o.conns];
        uint64_t k = per + ((uint64_t)i < extra);
        if (!k || c->state != C_OPEN)
            continue;
        olen = 0;
        while (k--) {
            send_message(c);
            if (olen > OBUF_SIZE - 2 * ((size_t)o.size + 14)) {
                conn_write(c, obuf, olen);
                olen = 0;
            }
        }
        conn_write(c, obuf, olen);
        olen = 0;
    }
    rr += extra;
}

static void print_result(void)
{
    double win = (double)(R.t_end - R.t_window) / 1e9;
    if (win <= 0)
        win = 1e-9;
    printf("wsload mode=%s conns=%d", mode_names[o.mode], o.conns);
    if (o.mode == M_ECHO)
        printf(" inflight=%d", o.inflight);
    if (o.mode == M_SEND)
        printf(" rate=%.0f", o.rate);
    if (o.mode != M_HANDSHAKE && o.mode != M_IDLE)
        printf(" size=%d", o.size);
    printf(" duration_s=%.3f", win);
    if (o.mode == M_HANDSHAKE) {
        printf(" handshakes=%llu handshakes_per_s=%.0f", (unsigned long long)R.w_handshakes,
               (double)R.w_handshakes / win);
    } else {
        printf(" msgs=%llu msgs_per_s=%.0f", (unsigned long long)R.w_received,
               (double)R.w_received / win);
        if (o.mode == M_SEND)
            printf(" sent=%llu", (unsigned long long)R.w_sent);
    }
    printf(" p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
           h_pct_us(&R.hist, 0.50), h_pct_us(&R.hist, 0.90), h_pct_us(&R.hist, 0.99),
           h_pct_us(&R.hist, 0.999), (double)R.hist.max / 1000.0);
    printf(" errors=%llu lost=%llu other=%llu client_cpu_pct=%.1f",
           (unsigned long long)(R.errors + R.bad), (unsigned long long)R.lost,
           (unsigned long long)R.other,
           100.0 * R.w_cli_cpu / win);
    if (o.ncpu_pids) {
        uint64_t units = o.mode == M_HANDSHAKE ? R.w_handshakes : R.w_received;
        const char *unit = o.mode == M_HANDSHAKE ? "handshake" : "msg";
        double per = units ? 1e6 / (double)units : 0.0;
        printf(" server_cpu_pct=%.1f server_cpu_us_per_%s=%.3f", 100.0 * R.w_srv_cpu / win,
               unit, R.w_srv_cpu * per);
        printf(" server_user_pct=%.1f server_sys_pct=%.1f server_user_us_per_%s=%.3f"
               " server_sys_us_per_%s=%.3f", 100.0 * R.w_srv_user / win,
               100.0 * R.w_srv_sys / win, unit, R.w_srv_user * per, unit, R.w_srv_sys * per);
        if (o.ncpu_pids > 1) {
            /* the same figures per process, in --cpu-pid order, comma-separated */
            static const char *kinds[] = {"cpu", "user", "sys"};
            const double *vals[] = {R.w_srv_each, R.w_srv_each_user, R.w_srv_each_sys};
            for (int k = 0; k < 3; k++) {
                printf(" server_%s_us_per_%s_each=", kinds[k], unit);
                for (int i = 0; i < o.ncpu_pids; i++)
                    printf("%s%.3f", i ? "," : "", vals[k][i] * per);
            }
        }
    }
    putchar('\n');
    fflush(stdout);
}

/* idle/listen modes: command lines on stdin.
 *   reset   start a new measured window now: latency histogram emptied, counters zeroed
 *   stats   print one line (flushed): stats received=N other=N lost=N errors=N ready=N
 *           p50_us=... p90_us=... p99_us=... max_us=...  (everything since the last reset)
 * Other lines are ignored; stdin closing still ends the run. */
static struct {
    char line[320];
    size_t len;
    uint64_t received, other;
} cmd;

static void stdin_command(const char *line)
{
    if (!strcmp(line, "reset")) {
        if (!R.finished)
            in_window_snapshot(1);
        cmd.received = R.received;
        cmd.other = R.other;
    } else if (!strcmp(line, "stats")) {
        printf("stats received=%llu other=%llu lost=%llu errors=%llu ready=%d p50_us=%.1f "
               "p90_us=%.1f p99_us=%.1f max_us=%.1f\n",
               (unsigned long long)(R.received - cmd.received),
               (unsigned long long)(R.other - cmd.other), (unsigned long long)R.lost,
               (unsigned long long)(R.errors + R.bad), R.nready, h_pct_us(&R.hist, 0.50),
               h_pct_us(&R.hist, 0.90), h_pct_us(&R.hist, 0.99),
               (double)R.hist.max / 1000.0);
        fflush(stdout);
    } else if (!strncmp(line, "expect ", 7)) {
        size_t n = strlen(line + 7);
        if (n >= sizeof X.tok)
            n = sizeof X.tok - 1;
        memcpy(X.tok, line + 7, n);
        X.len = n;
        X.first = X.last = X.wrong = 0;
        for (int i = 0; i < o.conns; i++)
            conns[i].hits = 0;
        X.on = 1;
        printf("expecting conns=%d\n", R.nready);
        fflush(stdout);
    } else if (!strcmp(line, "count")) {
        int once = 0, zero = 0, multi = 0;
        for (int i = 0; i < o.conns; i++) {
            if (conns[i].state != C_OPEN)
                continue;
            if (conns[i].hits == 0)
                zero++;
            else if (conns[i].hits == 1)
                once++;
            else
                multi++;
        }
        printf("count once=%d zero=%d multi=%d wrong=%llu lost=%llu failed=%d ready=%d "
               "first_ns=%llu last_ns=%llu\n", once, zero, multi, (unsigned long long)X.wrong,
               (unsigned long long)R.lost, R.failed, R.nready, (unsigned long long)X.first,
               (unsigned long long)X.last);
        fflush(stdout);
    }
}

static void stdin_input(const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n') {
            cmd.line[cmd.len] = 0;
            if (cmd.len && cmd.line[cmd.len - 1] == '\r')
                cmd.line[cmd.len - 1] = 0;
            stdin_command(cmd.line);
            cmd.len = 0;
        } else if (cmd.len < sizeof cmd.line - 1) {
            cmd.line[cmd.len++] = ch;
        }
    }
}

static int run(void)
{
    struct epoll_event evs[1024];
    R.t0 = now_ns();
    uint64_t setup_deadline = R.t0 + (uint64_t)(o.setup_timeout * 1e9);

    if (o.mode == M_HANDSHAKE) {
        for (int i = 0; i < o.conns; i++)
            conn_open(&conns[i]);
        R.all_ready = 1;
        R.t_ready = R.t0;
        R.t_window = R.t0 + (uint64_t)(o.warmup * 1e9);
    } else {
        open_more();
    }
    if (o.mode == M_IDLE || o.mode == M_LISTEN) {
        /* stdin closing ends the run (fails for /dev/null or a file: signals/duration then) */
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    }

    for (;;) {
        uint64_t now = now_ns();
        int timeout = 100;
        if (R.ready_pending) {
            R.ready_pending = 0;
            all_ready();
            now = now_ns();
        }
        if (!R.all_ready) {
            if (now > setup_deadline && !R.ready_pending) {
                if (!o.retries)
                    die(2, "setup timed out: %d of %d connection(s) ready", R.nready, o.conns);
                setup_give_up();
                continue;
            }
            open_more();
            if (o.connect_rate > 0 || rq_len)
                timeout = 5;
        } else if (!R.finished) {
            if (R.t_window && !R.measuring && now >= R.t_window)
                in_window_snapshot(1);
            if (R.measuring && o.duration > 0 &&
                now >= R.t_window + (uint64_t)(o.duration * 1e9)) {
                in_window_snapshot(0);
                break;
            }
            if (o.mode == M_SEND) {
                send_mode_tick(now);
                timeout = 1;
            } else if (R.t_window) {
                uint64_t target = R.measuring ? R.t_window + (uint64_t)(o.duration * 1e9)
                                              : R.t_window;
                if (!(R.measuring && o.duration <= 0)) {
                    uint64_t ms = target > now ? (target - now) / 1000000 + 1 : 0;
                    timeout = ms < 100 ? (int)ms : 100;
                }
            }
            if (o.mode == M_HANDSHAKE) {
                /* slots whose connect() failed outright are retried here */
                for (int i = 0; i < o.conns; i++)
                    if (conns[i].fd < 0 && conns[i].state == C_FREE)
                        conn_open(&conns[i]);
            }
        }
        if (got_signal || R.stdin_closed) {
            if (o.mode == M_IDLE || o.mode == M_LISTEN) {
                if (R.measuring)
                    in_window_snapshot(0);
                else if (!R.finished) {
                    R.t_window = R.t_end = now_ns();
                }
                break;
            }
            die(2, "interrupted");
        }
        int n = epoll_wait(epfd, evs, 1024, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die(2, "epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            uint32_t id = evs[i].data.u32;
            if (id == UINT32_MAX) {
                char tmp[256];
                ssize_t r = read(0, tmp, sizeof tmp);
                if (r <= 0) {
                    R.stdin_closed = 1;
                    epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
                } else {
                    stdin_input(tmp, (size_t)r);
                }
                continue;
            }
            on_event(&conns[id], evs[i].events);
        }
    }

    print_result();
    if (o.mode == M_IDLE)
        msg("idle: releasing %d connection(s)", o.conns);
    for (int i = 0; i < o.conns; i++)
        if (conns[i].fd >= 0)
            conn_close(&conns[i], o.mode == M_ECHO || o.mode == M_SEND ||
                                  o.close_how == CLOSE_RST);
    return (R.errors || R.bad || R.lost) ? 3 : 0;
}

/* ------------------------------------------------------------------ command line */

static void usage(void)
{
    fputs(
        "usage: wsload [options]\n"
        "  --mode echo|send|listen|handshake|idle   (default echo)\n"
        "  --host IP --port N --path /p             server (default 127.0.0.1:8282 /)\n"
        "  --src A[,B|,C-D]   source addresses, round-robin per connection\n"
        "                     (e.g. 127.0.0.2-9 = 127.0.0.2 .. 127.0.0.9)\n"
        "  -c, --conns N      connections (handshake mode: concurrent slots)\n"
        "  -k, --inflight K   echo: messages in flight per connection (default 10)\n"
        "  -s, --size B       payload bytes (default 64; >= 16 text, >= 8 binary for timing)\n"
        "  --binary           binary frames (default text)\n"
        "  -w, --warmup S     seconds before the measured window (default 2)\n"
        "  -d, --duration S   measured window (default 5; idle/listen 0 = until stdin closes)\n"
        "  --rate R           send mode: messages/s over all connections (default 1000)\n"
        "  --concurrency N    connections being opened at once (default 256)\n"
        "  --setup-timeout S  give up if not all connections are ready by then (default 60;\n"
        "                     with --retries the ones not ready count as failed)\n"
        "  --retries N        retry a connection whose setup failed up to N times, then count\n"
        "                     it as failed instead of ending the run (default 0)\n"
        "  --retry-delay S    seconds before such a retry (default 0.5)\n"
        "  --connect-rate R   at most R connection attempts per second (default: no cap)\n"
        "  --login TEXT       text frame sent after the handshake (%i = connection index)\n"
        "  --login-wait       a connection is ready once a frame came back after the login\n"
        "                     (without --login: once the server's first frame arrived)\n"
        "  --header 'N: v'    extra request header (repeatable)\n"
        "  --browser          add the headers a browser sends (User-Agent, Origin, Cookie...)\n"
        "  --close fin|rst|ws handshake mode: how to end each connection (default fin);\n"
        "                     idle/listen: rst releases the connections with a reset\n"
        "  --cpu-pid P[,P..]  report utime and stime of these processes over the window\n"
        "  -q, --quiet        no progress on stderr\n"
        "idle/listen modes read stdin lines: 'reset' (new window: histogram and counters\n"
        "from zero), 'stats' (prints 'stats received=N ... p50_us=... p99_us=...'),\n"
        "'expect TOKEN' (count text frames equal to TOKEN per connection; answers\n"
        "'expecting conns=N'), 'count' (prints 'count once=N zero=N multi=N wrong=N lost=N\n"
        "failed=N ready=N first_ns=T last_ns=T'); EOF ends.\n",
        stderr);
}

static void parse_src(const char *arg)
{
    char *s = strdup(arg), *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        int last = -1;
        if (dash) {
            *dash = 0;
            last = atoi(dash + 1);
        }
        struct in_addr a;
        if (inet_pton(AF_INET, tok, &a) != 1)
            die(1, "bad source address %s", tok);
        uint32_t h = ntohl(a.s_addr);
        int first = (int)(h & 0xff);
        if (last < 0)
            last = first;
        for (int x = first; x <= last; x++) {
            if (o.nsrc >= MAX_SRC)
                die(1, "too many source addresses");
            o.src[o.nsrc++].s_addr = htonl((h & ~0xffu) | (uint32_t)x);
        }
    }
    free(s);
}

static void add_header(const char *line)
{
    size_t n = strlen(line);
    o.headers = xrealloc(o.headers, o.headers_len + n + 3);
    memcpy(o.headers + o.headers_len, line, n);
    memcpy(o.headers + o.headers_len + n, "\r\n", 3);
    o.headers_len += n + 2;
}

/* what Chrome sends besides the required headers (the server parses all of them) */
static const char *BROWSER_HEADERS[] = {
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Origin: http://127.0.0.1",
    "Accept-Encoding: gzip, deflate, br",
    "Accept-Language: en-US,en;q=0.9",
    "Cookie: PHPSESSID=5f2b8c1e9a7d4e3f; theme=dark",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    NULL};

static void parse_args(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_PATH, O_SRC, O_BINARY, O_RATE, O_CONC, O_SETUP, O_LOGIN,
           O_LOGIN_WAIT, O_CLOSE, O_CPU, O_MODE, O_HANDSHAKE, O_IDLE, O_LISTEN, O_HEADER,
           O_BROWSER, O_RETRIES, O_RETRY_DELAY, O_CONNECT_RATE };
    static const struct option lo[] = {
        {"mode", 1, 0, O_MODE}, {"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT},
        {"path", 1, 0, O_PATH}, {"src", 1, 0, O_SRC}, {"conns", 1, 0, 'c'},
        {"inflight", 1, 0, 'k'}, {"size", 1, 0, 's'}, {"binary", 0, 0, O_BINARY},
        {"warmup", 1, 0, 'w'}, {"duration", 1, 0, 'd'}, {"rate", 1, 0, O_RATE},
        {"concurrency", 1, 0, O_CONC}, {"setup-timeout", 1, 0, O_SETUP},
        {"login", 1, 0, O_LOGIN}, {"login-wait", 0, 0, O_LOGIN_WAIT},
        {"close", 1, 0, O_CLOSE}, {"cpu-pid", 1, 0, O_CPU}, {"quiet", 0, 0, 'q'},
        {"handshake", 0, 0, O_HANDSHAKE}, {"idle", 1, 0, O_IDLE}, {"listen", 0, 0, O_LISTEN},
        {"header", 1, 0, O_HEADER}, {"browser", 0, 0, O_BROWSER},
        {"retries", 1, 0, O_RETRIES}, {"retry-delay", 1, 0, O_RETRY_DELAY},
        {"connect-rate", 1, 0, O_CONNECT_RATE},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:k:s:w:d:qh", lo, NULL)) != -1) {
        switch (ch) {
        case O_MODE: {
            int found = 0;
            for (int i = 0; i < 5; i++)
                if (!strcmp(optarg, mode_names[i])) {
                    o.mode = (enum mode)i;
                    found = 1;
                }
            if (!found)
                die(1, "unknown mode %s", optarg);
            break;
        }
        case O_HANDSHAKE: o.mode = M_HANDSHAKE; break;
        case O_IDLE: o.mode = M_IDLE; o.conns = atoi(optarg); o.duration = 0; break;
        case O_LISTEN: o.mode = M_LISTEN; break;
        case O_HOST: o.host = optarg; break;
        case O_PORT: o.port = atoi(optarg); break;
        case O_PATH: o.path = optarg; break;
        case O_SRC: parse_src(optarg); break;
        case 'c': o.conns = atoi(optarg); break;
        case 'k': o.inflight = atoi(optarg); break;
        case 's': o.size = atoi(optarg); break;
        case O_BINARY: o.binary = 1; break;
        case 'w': o.warmup = atof(optarg); break;
        case 'd': o.duration = atof(optarg); break;
        case O_RATE: o.rate = atof(optarg); break;
        case O_CONC: o.concurrency = atoi(optarg); break;
        case O_SETUP: o.setup_timeout = atof(optarg); break;
        case O_LOGIN: o.login = optarg; break;
        case O_LOGIN_WAIT: o.login_wait = 1; break;
        case O_HEADER: add_header(optarg); break;
        case O_RETRIES: o.retries = atoi(optarg); break;
        case O_RETRY_DELAY: o.retry_delay = atof(optarg); break;
        case O_CONNECT_RATE: o.connect_rate = atof(optarg); break;
        case O_BROWSER:
            for (int i = 0; BROWSER_HEADERS[i]; i++)
                add_header(BROWSER_HEADERS[i]);
            break;
        case O_CLOSE:
            if (!strcmp(optarg, "fin")) o.close_how = CLOSE_FIN;
            else if (!strcmp(optarg, "rst")) o.close_how = CLOSE_RST;
            else if (!strcmp(optarg, "ws")) o.close_how = CLOSE_WS;
            else die(1, "--close takes fin, rst or ws");
            break;
        case O_CPU: {
            char *s = optarg;
            while (*s) {
                if (o.ncpu_pids >= MAX_CPU_PIDS)
                    die(1, "too many --cpu-pid values");
                o.cpu_pids[o.ncpu_pids++] = (pid_t)strtol(s, &s, 10);
                if (*s == ',')
                    s++;
                else if (*s)
                    die(1, "bad --cpu-pid list");
            }
            break;
        }
        case 'q': o.quiet = 1; break;
        case 'h': usage(); exit(0);
        default: usage(); exit(1);
        }
    }
    if (optind < argc)
        die(1, "unexpected argument %s", argv[optind]);
    if (o.retries < 0 || o.retries > 255 || o.retry_delay < 0 || o.connect_rate < 0)
        die(1, "--retries must be 0..255, --retry-delay and --connect-rate >= 0");
    if (o.conns < 1 || o.port < 1 || o.size < 0 || o.inflight < 1 || o.concurrency < 1)
        die(1, "bad numbers (conns, port, size, inflight, concurrency must be positive)");
    if (o.size > OBUF_SIZE / 4)
        die(1, "--size too large (max %d)", OBUF_SIZE / 4);
    if ((o.mode == M_ECHO || o.mode == M_SEND || o.mode == M_HANDSHAKE) && o.duration <= 0)
        die(1, "--duration must be > 0 in %s mode", mode_names[o.mode]);
    if (o.mode == M_ECHO && (size_t)o.inflight * ((size_t)o.size + 14) > OBUF_SIZE)
        die(1, "--inflight x --size too large");
    if (o.mode == M_SEND && o.rate <= 0)
        die(1, "--rate must be > 0");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)o.conns + 16 > rl.rlim_cur)
        die(1, "%d connections need more file descriptors than the limit %llu: split them over "
            "several processes", o.conns, (unsigned long long)rl.rlim_cur);

    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &server_addr.sin_addr) != 1)
        die(1, "--host must be an IPv4 address");

    char hostport[128];
    snprintf(hostport, sizeof hostport, "%s:%d", o.host, o.port);
    request_len = (size_t)asprintf(&request,
                                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                   "Sec-WebSocket-Version: 13\r\n%s\r\n",
                                   o.path, hostport, WS_KEY, o.headers ? o.headers : "");

    rbuf = malloc(RBUF_SIZE);
    obuf = malloc(OBUF_SIZE);
    conns = calloc((size_t)o.conns, sizeof *conns);
    rq_idx = calloc((size_t)o.conns, sizeof *rq_idx);
    rq_due = calloc((size_t)o.conns, sizeof *rq_due);
    if (!rbuf || !obuf || !conns || !rq_idx || !rq_due)
        die(2, "out of memory");
    for (int i = 0; i < o.conns; i++) {
        conns[i].fd = -1;
        conns[i].idx = (uint32_t)i;
    }
    rng_state ^= (uint32_t)getpid() * 2654435761u ^ (uint32_t)now_ns();
    if (!rng_state)
        rng_state = 1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die(2, "epoll_create1: %s", strerror(errno));
    return run();
}
