/*
 * floor_echo.c - the "kernel floor" for the websocket echo benchmarks.
 *
 * A websocket echo server that does as little as a correct one can: one thread, one epoll set
 * (level-triggered: one recv() per readable event, no extra recv() to see EAGAIN), non-blocking
 * sockets, no dependencies beyond libc:  gcc -O2 -o floor_echo floor_echo.c
 *
 * It accepts websocket upgrades (GET request, Sec-WebSocket-Key -> Sec-WebSocket-Accept with the
 * SHA-1 and base64 below), then echoes every masked client frame as an unmasked server frame
 * with the same FIN bit and opcode (text, binary and continuation frames as they come; ping is
 * answered with pong, pong is ignored, close is echoed and the connection closed). Partial
 * frames are carried over to the next read, several frames in one read are all answered, and
 * everything one read produced leaves in one send() - the same batching the gwgevent server
 * does. Lengths of 7, 16 and 64 bits are handled (frames up to 64 MiB). No extensions, no
 * UTF-8 validation of text (an echo does not need it; a conforming server would add that
 * cost), no handshake timeout.
 *
 * Its CPU per echoed message is what the kernel costs for the same load (epoll_wait, recv,
 * send, and on loopback the peer's TCP receive path that runs in the sender's context) plus a
 * few hundred nanoseconds of C: a benchmark reports the gwgevent server's CPU as a ratio to it,
 * measured on the same core in the same session.
 *
 *   floor_echo [--host 127.0.0.1] [--port 8282] [--cpu N] [--backlog 1024] [-q]
 *
 * --cpu N pins the process to core N (sched_setaffinity) before it listens. Prints
 * "floor_echo: listening on HOST:PORT pid N" on stderr once the port accepts; SIGINT or
 * SIGTERM end it (exit 0).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_SIZE (256 * 1024)
#define MAX_HEAD 16384                      /* longest upgrade request accepted */
#define MAX_FRAME (64ull * 1024 * 1024)     /* longest frame payload accepted */

static struct {
    const char *host;
    int port;
    int cpu;
    int backlog;
    int quiet;
} o = {.host = "127.0.0.1", .port = 8282, .cpu = -1, .backlog = 1024};

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "floor_echo: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p && n)
        die("%s", "out of memory");
    return p;
}

/* ------------------------------------------------------------------ SHA-1 (FIPS 180-1) */

static inline uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const unsigned char *data, size_t n, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sha1_block(h, data + i);
    unsigned char tail[128] = {0};
    size_t rest = n - i;
    memcpy(tail, data + i, rest);
    tail[rest] = 0x80;
    size_t tl = rest + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int j = 0; j < 8; j++)
        tail[tl - 1 - j] = (unsigned char)(bits >> (8 * j));
    sha1_block(h, tail);
    if (tl == 128)
        sha1_block(h, tail + 64);
    for (int j = 0; j < 5; j++) {
        out[4 * j] = (unsigned char)(h[j] >> 24);
        out[4 * j + 1] = (unsigned char)(h[j] >> 16);
        out[4 * j + 2] = (unsigned char)(h[j] >> 8);
        out[4 * j + 3] = (unsigned char)h[j];
    }
}

static size_t base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o_ = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o_++] = tab[(v >> 18) & 63];
        out[o_++] = tab[(v >> 12) & 63];
        out[o_++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o_++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o_] = 0;
    return o_;
}

/* ------------------------------------------------------------------ connections */

enum { S_HANDSHAKE, S_OPEN, S_CLOSING };

struct conn {
    int fd;
    int state;
    int out_armed;          /* waiting for EPOLLOUT (EPOLLIN off meanwhile: back-pressure) */
    char *in;               /* unparsed input carried over to the next read */
    size_t in_len, in_cap;
    char *out;              /* output the kernel did not take yet */
    size_t out_off, out_len, out_cap;
};

static int epfd;
static char *rbuf;
static char *obuf;          /* what one read produces, sent in one send() */
static size_t olen, ocap;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void conn_free(struct conn *c)
{
    close(c->fd);           /* also leaves the epoll set */
    free(c->in);
    free(c->out);
    free(c);
}

static void set_events(struct conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static inline void out_reserve(size_t n)
{
    if (olen + n > ocap) {
        ocap = (olen + n) * 2;
        obuf = xrealloc(obuf, ocap);
    }
}

/* Send buf (or queue what the kernel does not take). Returns -1 when c was freed. */
static int conn_send(struct conn *c, const char *buf, size_t n)
{
    if (!n)
        return 0;
    if (!c->out_armed) {
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_free(c);
                return -1;
            }
            w = 0;
        }
        if ((size_t)w == n)
            return 0;
        buf += w;
        n -= (size_t)w;
        c->out_armed = 1;
        set_events(c, EPOLLOUT);
    }
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, buf, n);
    c->out_len += n;
    return 0;
}

static int conn_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            conn_free(c);
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    c->out_armed = 0;
    if (c->state == S_CLOSING) {
        conn_free(c);
        return -1;
    }
    set_events(c, EPOLLIN);
    return 0;
}

/* Append one server frame (b0 = FIN|opcode) to obuf, payload unmasked on the way. */
static void frame_out(unsigned char b0, const unsigned char *p, uint64_t n,
                      const unsigned char mask[4])
{
    out_reserve((size_t)n + 10);
    unsigned char *f = (unsigned char *)obuf + olen;
    size_t h = 2;
    f[0] = b0;
    if (n < 126) {
        f[1] = (unsigned char)n;
    } else if (n < 65536) {
        f[1] = 126;
        f[2] = (unsigned char)(n >> 8);
        f[3] = (unsigned char)n;
        h = 4;
    } else {
        f[1] = 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)(n >> (56 - 8 * i));
        h = 10;
    }
    unsigned char *d = f + h;
    uint64_t m8;
    uint32_t m4;
    memcpy(&m4, mask, 4);
    m8 = (uint64_t)m4 << 32 | m4;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m8;
        memcpy(d + i, &v, 8);
    }
    for (; i < n; i++)
        d[i] = p[i] ^ mask[i & 3];
    olen += h + (size_t)n;
}

/* Parse client frames in buf[0..len); answers go to obuf. Returns bytes consumed, or -1 for
 * a protocol error (the caller drops the connection). Stops after a close frame. */
static ssize_t parse_frames(struct conn *c, const unsigned char *buf, size_t len)
{
    size_t pos = 0;
    while (len - pos >= 2) {
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        uint64_t n = b1 & 0x7f;
        size_t h = 2;
        if (!(b1 & 0x80) || (b0 & 0x70))      /* client frames are masked; no extensions */
            return -1;
        if (n == 126) {
            if (len - pos < 4)
                break;
            n = (uint64_t)buf[pos + 2] << 8 | buf[pos + 3];
            h = 4;
        } else if (n == 127) {
            if (len - pos < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | buf[pos + 2 + i];
            h = 10;
        }
        if (n > MAX_FRAME)
            return -1;
        if (len - pos - h < 4 + n)
            break;
        const unsigned char *mask = buf + pos + h, *p = mask + 4;
        int op = b0 & 0x0f;
        pos += h + 4 + (size_t)n;
        switch (op) {
        case 0: case 1: case 2:
            frame_out(b0, p, n, mask);
            break;
        case 8:                                 /* close: echo it, then close */
            if (n > 125 || !(b0 & 0x80))
                return -1;
            frame_out(0x88, p, n, mask);
            c->state = S_CLOSING;
            return (ssize_t)pos;
        case 9:                                 /* ping -> pong */
            if (n > 125 || !(b0 & 0x80))
                return -1;
            frame_out(0x8a, p, n, mask);
            break;
        case 10:
            break;
        default:
            return -1;
        }
    }
    return (ssize_t)pos;
}

/* The upgrade request is complete in buf[0..end). Appends the 101 reply to obuf; -1 = bad. */
static int handshake(const char *buf, size_t end)
{
    if (end < 4 || memcmp(buf, "GET ", 4) != 0)
        return -1;
    static const char name[] = "sec-websocket-key:";
    const char *key = NULL;
    size_t klen = 0;
    for (const char *line = memchr(buf, '\n', end); line && line + 1 < buf + end;
         line = memchr(line + 1, '\n', (size_t)(buf + end - line - 1))) {
        const char *s = line + 1;
        if ((size_t)(buf + end - s) > sizeof name - 1 && !strncasecmp(s, name, sizeof name - 1)) {
            s += sizeof name - 1;
            while (*s == ' ' || *s == '\t')
                s++;
            const char *e = s;
            while (e < buf + end && *e != '\r' && *e != '\n')
                e++;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            key = s;
            klen = (size_t)(e - s);
            break;
        }
    }
    if (!key || !klen || klen > 64)
        return -1;
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char src[64 + sizeof guid], digest[20];
    memcpy(src, key, klen);
    memcpy(src + klen, guid, sizeof guid - 1);
    sha1(src, klen + sizeof guid - 1, digest);
    char accept[32];
    base64(digest, 20, accept);
    out_reserve(160);
    olen += (size_t)snprintf(obuf + olen, 160,
                             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    return 0;
}

/* New bytes for c. Returns -1 when c was freed. */
static int on_data(struct conn *c, const char *data, size_t len)
{
    const char *buf = data;
    if (c->in_len) {                       /* a partial frame / request head is waiting */
        if (c->in_len + len > c->in_cap) {
            c->in_cap = (c->in_len + len) * 2;
            c->in = xrealloc(c->in, c->in_cap);
        }
        memcpy(c->in + c->in_len, data, len);
        len += c->in_len;
        c->in_len = 0;
        buf = c->in;
    }
    size_t pos = 0;
    olen = 0;
    if (c->state == S_HANDSHAKE) {
        const char *e = memmem(buf, len, "\r\n\r\n", 4);
        if (!e) {
            if (len > MAX_HEAD) {
                conn_free(c);
                return -1;
            }
            goto keep;
        }
        size_t end = (size_t)(e - buf) + 4;
        if (handshake(buf, end) < 0) {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                                      "Content-Length: 0\r\n\r\n";
            send(c->fd, bad, sizeof bad - 1, MSG_NOSIGNAL);
            conn_free(c);
            return -1;
        }
        c->state = S_OPEN;
        pos = end;
    }
    if (c->state == S_OPEN && pos < len) {
        ssize_t used = parse_frames(c, (const unsigned char *)buf + pos, len - pos);
        if (used < 0) {
            conn_free(c);
            return -1;
        }
        pos += (size_t)used;
    }
    if (c->state == S_CLOSING)
        pos = len;                         /* whatever follows a close frame is dropped */
keep:
    if (pos < len) {
        size_t rest = len - pos;
        if (buf == c->in) {
            memmove(c->in, c->in + pos, rest);
        } else {
            if (rest > c->in_cap) {
                c->in_cap = rest < 4096 ? 4096 : rest * 2;
                c->in = xrealloc(c->in, c->in_cap);
            }
            memcpy(c->in, buf + pos, rest);
        }
        c->in_len = rest;
    }
    if (conn_send(c, obuf, olen) < 0)
        return -1;
    if (c->state == S_CLOSING && !c->out_armed) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->out_armed) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_flush(c);
        return;
    }
    ssize_t n = recv(c->fd, rbuf, RBUF_SIZE, 0);
    if (n > 0) {
        on_data(c, rbuf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    conn_free(c);                          /* EOF or error */
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                fprintf(stderr, "floor_echo: accept4: %s\n", strerror(errno));
                return;
            }
            die("accept4: %s", strerror(errno));
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            die("%s", "out of memory");
        c->fd = fd;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }
}

static void usage(FILE *f)
{
    fputs("usage: floor_echo [--host IP] [--port N] [--cpu N] [--backlog N] [-q]\n"
          "  a minimal C epoll websocket echo server (the benchmarks' kernel floor)\n", f);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"cpu", 1, 0, 'C'}, {"backlog", 1, 0, 'b'},
        {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "p:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'C': o.cpu = atoi(optarg); break;
        case 'b': o.backlog = atoi(optarg); break;
        case 'q': o.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc || o.port < 1 || o.port > 65535 || o.backlog < 1) {
        usage(stderr);
        return 1;
    }
    if (o.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            die("sched_setaffinity: %s", strerror(errno));
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};   /* no SA_RESTART: epoll_wait -> EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    if (inet_pton(AF_INET, o.host, &addr.sin_addr) != 1)
        die("--host must be an IPv4 address, not %s", o.host);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind: %s", strerror(errno));
    if (listen(lfd, o.backlog) < 0)
        die("listen: %s", strerror(errno));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &le);
    rbuf = malloc(RBUF_SIZE);
    ocap = 65536;
    obuf = malloc(ocap);
    if (!rbuf || !obuf)
        die("%s", "out of memory");
    if (!o.quiet)
        fprintf(stderr, "floor_echo: listening on %s:%d pid %d\n", o.host, o.port, (int)getpid());

    struct epoll_event evs[1024];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 1024, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr)
                on_accept(lfd);
            else
                on_event(evs[i].data.ptr, evs[i].events);
        }
    }
    return 0;
}
