/*
 * imgate-device: a small imgate device in C that speaks CBOR.
 *
 * It logs in over MQTT 3.1.1 as {UID}:{DEVICE} with a CBOR device token
 * (`imgate token issue UID --device DEVICE --encoding cbor`), subscribes to its
 * inbox, sends one text message to PEER, prints the server's ack, waits for a
 * message from someone else, prints it, and exits.
 *
 *   imgate-device [-t SECONDS] HOST PORT UID DEVICE TOKEN PEER TEXT
 *
 * stdout (one line each):
 *   ack id=<id> seq=<seq> conv=<conv>
 *   msg from=<from> seq=<seq> text=<text>
 *
 * Exit codes: 0 done; 1 refused, error ack or lost connection; 2 timed out;
 * 64 bad arguments.
 *
 * In CBOR the protocol's map keys travel as small unsigned integers ("cid" is
 * 5, "to" 9: docs/protocol.md, "Encodings"). The device sends them so, and
 * reads them either as numbers (what the server sends) or as names.
 *
 * Libraries: libmosquitto (MQTT) and libcbor (CBOR), both from Debian.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cbor.h>
#include <mosquitto.h>

#define EXIT_REFUSED 1
#define EXIT_TIMEOUT 2
#define EXIT_USAGE 64
#define KEEPALIVE 30
#define DEFAULT_TIMEOUT 20
/* Nothing the server sends a device is near this (a text is at most 8000
 * characters); a bigger payload is dropped unread. (libcbor itself refuses
 * items nested over 2048 deep.) */
#define MAX_PAYLOAD (64 * 1024)

struct state {
    const char *uid;
    const char *peer;
    const char *text;
    char *in_filter;   /* {p}/{uid}/in/#   */
    char *ack_topic;   /* {p}/{uid}/in/ack */
    char *msg_topic;   /* {p}/{uid}/in/msg */
    char *out_topic;   /* {p}/{uid}/out/msg */
    char cid[64];
    int sub_mid;
    bool connected;
    bool subscribed;
    bool acked;
    bool got_msg;
    bool done;
    int exit_code;
};

static const char *prog = "imgate-device";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [-t SECONDS] HOST PORT UID DEVICE TOKEN PEER TEXT\n"
            "\n"
            "Logs in as UID:DEVICE with TOKEN (a CBOR device token: imgate token issue UID\n"
            "--device DEVICE --encoding cbor; \"-\" reads it from $IMGATE_TOKEN), sends TEXT to\n"
            "PEER, prints the ack and the first message from someone else, then exits.\n"
            "\n"
            "  -t SECONDS   give up after this long (default $IMGATE_TIMEOUT, else %d)\n"
            "  $IMGATE_PREFIX  topic prefix (default \"im\")\n"
            "\n"
            "exit: 0 done, 1 refused / error ack / connection lost, 2 timed out, 64 usage\n",
            prog, DEFAULT_TIMEOUT);
}

static void finish(struct state *st, int code)
{
    if (!st->done) {
        st->done = true;
        st->exit_code = code;
    }
}

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* uid: 1-64, device: 1-32 characters of A-Z a-z 0-9 _ - (docs/protocol.md §1). */
static bool valid_id(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- map keys ------------------------------------------------------------ */

/* The protocol's map keys this device reads or writes, each its number in
 * docs/protocol.md, "Encodings" (a number never changes meaning). */
enum key {
    K_NONE = 0, /* any other key */
    K_ID = 1,
    K_CONV = 2,
    K_SEQ = 3,
    K_FROM = 4,
    K_CID = 5,
    K_TYPE = 6,
    K_TEXT = 7,
    K_TO = 9,
    K_ERROR = 11,
    K_CODE = 12,
    K_MESSAGE = 13,
};

static const struct {
    enum key key;
    const char *name;
} key_names[] = {
    {K_ID, "id"}, {K_CONV, "conv"}, {K_SEQ, "seq"}, {K_FROM, "from"}, {K_CID, "cid"}, {K_TYPE, "type"},
    {K_TEXT, "text"}, {K_TO, "to"}, {K_ERROR, "error"}, {K_CODE, "code"}, {K_MESSAGE, "message"},
};
#define NKEYS (sizeof key_names / sizeof key_names[0])

/* Which of those a map key is: an unsigned integer of the table (what the
 * server sends) or, leniently, a definite-length text string of its name.
 * Anything else (another number, a negative one, a chunked or byte string, a
 * float...) is K_NONE. */
static enum key key_of(const cbor_item_t *k)
{
    if (!k)
        return K_NONE;
    if (cbor_isa_uint(k)) {
        uint64_t n = cbor_get_int(k);
        for (size_t i = 0; i < NKEYS; i++)
            if ((uint64_t)key_names[i].key == n)
                return key_names[i].key;
    } else if (cbor_isa_string(k) && cbor_string_is_definite(k)) {
        size_t len = cbor_string_length(k);
        for (size_t i = 0; i < NKEYS; i++)
            if (strlen(key_names[i].name) == len && memcmp(cbor_string_handle(k), key_names[i].name, len) == 0)
                return key_names[i].key;
    }
    return K_NONE;
}

/* ---- CBOR reading ------------------------------------------------------- */

/* The value under `key` (by number or name) in map `map`, or NULL: also when
 * the key is there twice (say once as 4 and once as "from"), which the
 * protocol does not allow. Nothing is copied. */
static cbor_item_t *map_get(const cbor_item_t *map, enum key key)
{
    cbor_item_t *found = NULL;
    struct cbor_pair *pairs = cbor_map_handle(map);
    size_t n = cbor_map_size(map);
    for (size_t i = 0; i < n; i++) {
        if (key_of(pairs[i].key) != key)
            continue;
        if (found)
            return NULL;
        found = pairs[i].value;
    }
    return found;
}

/* A NUL-terminated copy of a text string item (definite or chunked), or NULL
 * when it is not a text string or holds a NUL. The caller frees it. */
static char *text_dup(const cbor_item_t *it)
{
    if (!it || !cbor_isa_string(it))
        return NULL;
    size_t total = 0;
    size_t nchunks = 1;
    cbor_item_t *const *chunks = NULL;
    if (cbor_string_is_indefinite(it)) {
        chunks = cbor_string_chunks_handle(it);
        nchunks = cbor_string_chunk_count(it);
        for (size_t i = 0; i < nchunks; i++) {
            if (!chunks[i] || !cbor_isa_string(chunks[i]) || !cbor_string_is_definite(chunks[i]))
                return NULL;
            total += cbor_string_length(chunks[i]);
        }
    } else {
        total = cbor_string_length(it);
    }
    char *s = malloc(total + 1);
    if (!s)
        return NULL;
    size_t off = 0;
    for (size_t i = 0; i < nchunks; i++) {
        const cbor_item_t *c = chunks ? chunks[i] : it;
        size_t len = cbor_string_length(c);
        if (len)
            memcpy(s + off, cbor_string_handle(c), len);
        off += len;
    }
    s[total] = '\0';
    if (memchr(s, '\0', total)) {
        free(s);
        return NULL;
    }
    return s;
}

static bool get_uint(const cbor_item_t *it, uint64_t *out)
{
    if (!it || !cbor_isa_uint(it))
        return false;
    *out = cbor_get_int(it);
    return true;
}

/* Prints s on one line: control characters and backslashes escaped. */
static void put_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", f);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

static const char *load_error(cbor_error_code code)
{
    switch (code) {
    case CBOR_ERR_NOTENOUGHDATA: return "truncated";
    case CBOR_ERR_NODATA: return "no data";
    case CBOR_ERR_MALFORMATED: return "malformed";
    case CBOR_ERR_MEMERROR: return "out of memory or nested too deeply";
    case CBOR_ERR_SYNTAXERROR: return "syntax error";
    default: return "error";
    }
}

/* Decodes a whole payload as one CBOR map, or returns NULL (and says why). */
static cbor_item_t *load_map(const struct mosquitto_message *msg)
{
    if (msg->payloadlen <= 0 || msg->payloadlen > MAX_PAYLOAD) {
        fprintf(stderr, "%s: ignoring %d-byte payload on %s\n", prog, msg->payloadlen, msg->topic);
        return NULL;
    }
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(msg->payload, (size_t)msg->payloadlen, &res);
    if (!item || res.error.code != CBOR_ERR_NONE) {
        fprintf(stderr, "%s: ignoring malformed CBOR on %s (%s at byte %zu)\n", prog, msg->topic,
                load_error(res.error.code), res.error.position);
        if (item)
            cbor_decref(&item);
        return NULL;
    }
    if (res.read != (size_t)msg->payloadlen || !cbor_isa_map(item)) {
        fprintf(stderr, "%s: ignoring %s on %s: not one CBOR map\n", prog,
                res.read != (size_t)msg->payloadlen ? "trailing bytes" : "payload", msg->topic);
        cbor_decref(&item);
        return NULL;
    }
    return item;
}

/* ---- what arrives ------------------------------------------------------- */

static void handle_ack(struct state *st, const cbor_item_t *ack)
{
    const cbor_item_t *cid = map_get(ack, K_CID);
    char *cid_s = text_dup(cid);
    bool ours = cid_s && strcmp(cid_s, st->cid) == 0;
    bool unknown = !cid || cbor_is_null(cid); /* a payload the server could not read has no cid */
    free(cid_s);
    if (!ours && !unknown)
        return; /* another device of this user sent that one */

    const cbor_item_t *err = map_get(ack, K_ERROR);
    if (err) {
        char *code = NULL, *message = NULL;
        if (cbor_isa_map(err)) {
            code = text_dup(map_get(err, K_CODE));
            message = text_dup(map_get(err, K_MESSAGE));
        }
        fprintf(stderr, "error %s: ", code ? code : "unknown");
        put_escaped(stderr, message ? message : "(the ack's error has no message)");
        fputc('\n', stderr);
        free(code);
        free(message);
        finish(st, EXIT_REFUSED);
        return;
    }
    if (!ours)
        return;

    char *id = text_dup(map_get(ack, K_ID));
    char *conv = text_dup(map_get(ack, K_CONV));
    uint64_t seq = 0;
    if (id && conv && get_uint(map_get(ack, K_SEQ), &seq)) {
        if (!st->acked) {
            st->acked = true;
            fputs("ack id=", stdout);
            put_escaped(stdout, id);
            printf(" seq=%llu conv=", (unsigned long long)seq);
            put_escaped(stdout, conv);
            fputc('\n', stdout);
        }
    } else {
        fprintf(stderr, "%s: ignoring an ack without id, seq or conv\n", prog);
    }
    free(id);
    free(conv);
}

static void handle_msg(struct state *st, const cbor_item_t *m)
{
    char *from = text_dup(map_get(m, K_FROM));
    char *type = text_dup(map_get(m, K_TYPE));
    char *text = text_dup(map_get(m, K_TEXT));
    uint64_t seq = 0;
    if (!from || !type || !get_uint(map_get(m, K_SEQ), &seq)) {
        fprintf(stderr, "%s: ignoring a message without from, type or seq\n", prog);
    } else if (strcmp(from, st->uid) != 0 && !st->got_msg) { /* our own copy is skipped */
        st->got_msg = true;
        fputs("msg from=", stdout);
        put_escaped(stdout, from);
        printf(" seq=%llu", (unsigned long long)seq);
        if (strcmp(type, "text") != 0) {
            fputs(" type=", stdout);
            put_escaped(stdout, type);
        }
        if (text) {
            fputs(" text=", stdout);
            put_escaped(stdout, text);
        }
        fputc('\n', stdout);
    }
    free(from);
    free(type);
    free(text);
}

/* ---- MQTT callbacks ----------------------------------------------------- */

static bool publish_message(struct mosquitto *mosq, struct state *st);

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct state *st = obj;
    if (rc != 0) {
        fprintf(stderr, "%s: login refused: %s (CONNACK return code %d)\n", prog, mosquitto_connack_string(rc),
                rc);
        finish(st, EXIT_REFUSED);
        return;
    }
    st->connected = true;
    int err = mosquitto_subscribe(mosq, &st->sub_mid, st->in_filter, 1);
    if (err != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "%s: subscribe: %s\n", prog, mosquitto_strerror(err));
        finish(st, EXIT_REFUSED);
    }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted_qos)
{
    struct state *st = obj;
    if (mid != st->sub_mid || st->subscribed)
        return;
    if (qos_count < 1 || granted_qos[0] == 0x80) {
        fprintf(stderr, "%s: the server refused the subscription to %s\n", prog, st->in_filter);
        finish(st, EXIT_REFUSED);
        return;
    }
    st->subscribed = true;
    if (!publish_message(mosq, st))
        finish(st, EXIT_REFUSED);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    struct state *st = obj;
    (void)mosq;
    if (st->done)
        return;
    bool is_ack = strcmp(msg->topic, st->ack_topic) == 0;
    if (!is_ack && strcmp(msg->topic, st->msg_topic) != 0)
        return; /* events, notifications, rpc: not this example's business */
    cbor_item_t *item = load_map(msg);
    if (!item)
        return;
    if (is_ack)
        handle_ack(st, item);
    else
        handle_msg(st, item);
    cbor_decref(&item);
    if (st->acked && st->got_msg)
        finish(st, EXIT_SUCCESS);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    struct state *st = obj;
    (void)mosq;
    st->connected = false;
    if (!st->done) {
        fprintf(stderr, "%s: connection lost: %s\n", prog,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        finish(st, EXIT_REFUSED);
    }
}

/* ---- sending ------------------------------------------------------------ */

/* Adds key (as its number: one byte) and a text value. */
static bool map_add_text(cbor_item_t *map, enum key key, const char *value)
{
    cbor_item_t *k = cbor_build_uint8((uint8_t)key);
    cbor_item_t *v = cbor_build_string(value);
    bool ok = k && v && cbor_map_add(map, (struct cbor_pair){.key = k, .value = v});
    /* the map holds its own references */
    if (k)
        cbor_decref(&k);
    if (v)
        cbor_decref(&v);
    return ok;
}

static bool publish_message(struct mosquitto *mosq, struct state *st)
{
    cbor_item_t *map = cbor_new_definite_map(4);
    unsigned char *buf = NULL;
    size_t buf_size = 0, len = 0;
    /* {5: cid, 9: peer, 6: "text", 7: text}: {"cid": ..., "to": ..., ...} */
    bool ok = map && map_add_text(map, K_CID, st->cid) && map_add_text(map, K_TO, st->peer) &&
              map_add_text(map, K_TYPE, "text") && map_add_text(map, K_TEXT, st->text);
    if (ok)
        len = cbor_serialize_alloc(map, &buf, &buf_size);
    if (map)
        cbor_decref(&map);
    if (!ok || len == 0) {
        fprintf(stderr, "%s: out of memory encoding the message\n", prog);
        free(buf);
        return false;
    }
    int err = len > INT32_MAX ? MOSQ_ERR_PAYLOAD_SIZE
                              : mosquitto_publish(mosq, NULL, st->out_topic, (int)len, buf, 1, false);
    free(buf);
    if (err != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "%s: publish: %s\n", prog, mosquitto_strerror(err));
        return false;
    }
    return true;
}

/* ---- main --------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void connect_timed_out(int sig)
{
    static const char m[] = "imgate-device: timed out connecting\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
    (void)w;
    _exit(EXIT_TIMEOUT);
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    long timeout = DEFAULT_TIMEOUT, port = 0;
    const char *env_timeout = getenv("IMGATE_TIMEOUT");
    if (env_timeout && *env_timeout && !parse_long(env_timeout, 1, 86400, &timeout)) {
        fprintf(stderr, "%s: IMGATE_TIMEOUT must be 1-86400 seconds\n", prog);
        return EXIT_USAGE;
    }
    int opt;
    while ((opt = getopt(argc, argv, "ht:")) != -1) {
        if (opt == 't' && parse_long(optarg, 1, 86400, &timeout))
            continue;
        if (opt == 't')
            fprintf(stderr, "%s: -t needs 1-86400 seconds\n", prog);
        usage(opt == 'h' ? stdout : stderr);
        return opt == 'h' ? EXIT_SUCCESS : EXIT_USAGE;
    }
    if (argc - optind != 7) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char **a = argv + optind;
    const char *host = a[0], *uid = a[2], *device = a[3], *token = a[4];
    struct state st = {.uid = uid, .peer = a[5], .text = a[6]};
    if (!parse_long(a[1], 1, 65535, &port)) {
        fprintf(stderr, "%s: PORT must be 1-65535, not '%s'\n", prog, a[1]);
        return EXIT_USAGE;
    }
    if (!valid_id(uid, 64) || !valid_id(device, 32)) {
        fprintf(stderr, "%s: UID (1-64) and DEVICE (1-32) are characters of A-Z a-z 0-9 _ -\n", prog);
        return EXIT_USAGE;
    }
    if (strcmp(token, "-") == 0 && !(token = getenv("IMGATE_TOKEN"))) {
        fprintf(stderr, "%s: TOKEN is '-' but IMGATE_TOKEN is not set\n", prog);
        return EXIT_USAGE;
    }
    if (!*st.peer || !*st.text) {
        fprintf(stderr, "%s: PEER and TEXT must not be empty\n", prog);
        return EXIT_USAGE;
    }
    const char *prefix = getenv("IMGATE_PREFIX");
    if (!prefix || !*prefix)
        prefix = "im";
    if (strpbrk(prefix, "+#")) {
        fprintf(stderr, "%s: IMGATE_PREFIX must not contain + or #\n", prog);
        return EXIT_USAGE;
    }

    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    snprintf(st.cid, sizeof st.cid, "c-%ld-%lld%03ld", (long)getpid(), (long long)wall.tv_sec,
             wall.tv_nsec / 1000000);
    char *client_id = xasprintf("%s:%s", uid, device);
    st.in_filter = xasprintf("%s/%s/in/#", prefix, uid);
    st.ack_topic = xasprintf("%s/%s/in/ack", prefix, uid);
    st.msg_topic = xasprintf("%s/%s/in/msg", prefix, uid);
    st.out_topic = xasprintf("%s/%s/out/msg", prefix, uid);

    setvbuf(stdout, NULL, _IOLBF, 0); /* one line as soon as it is known, also into a pipe */
    mosquitto_lib_init();
    struct mosquitto *mosq = NULL;
    int err;
    if (!client_id || !st.in_filter || !st.ack_topic || !st.msg_topic || !st.out_topic ||
        !(mosq = mosquitto_new(client_id, true, &st))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        st.exit_code = EXIT_REFUSED;
        goto out;
    }
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_callback_set(mosq, on_message);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    err = mosquitto_username_pw_set(mosq, uid, token);
    if (err != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "%s: credentials: %s\n", prog, mosquitto_strerror(err));
        st.exit_code = EXIT_REFUSED;
        goto out;
    }

    /* The name lookup and TCP connect block; the alarm bounds them. */
    double deadline = now_s() + (double)timeout;
    signal(SIGALRM, connect_timed_out);
    alarm((unsigned)timeout);
    err = mosquitto_connect(mosq, host, (int)port, KEEPALIVE);
    alarm(0);
    if (err != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "%s: cannot connect to %s:%ld: %s\n", prog, host, port,
                err == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(err));
        st.exit_code = EXIT_REFUSED;
        goto out;
    }

    while (!st.done) {
        double left = deadline - now_s();
        if (left <= 0) {
            fprintf(stderr, "%s: timed out after %ld s waiting for %s\n", prog, timeout,
                    !st.connected    ? "the server's CONNACK"
                    : !st.subscribed ? "the SUBACK"
                    : !st.acked      ? "the ack of the message sent"
                                     : "a message from someone else");
            finish(&st, EXIT_TIMEOUT);
            break;
        }
        err = mosquitto_loop(mosq, left < 0.2 ? (int)(left * 1000) + 1 : 200, 1);
        if (err != MOSQ_ERR_SUCCESS && !st.done) {
            fprintf(stderr, "%s: connection lost: %s\n", prog,
                    err == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(err));
            finish(&st, EXIT_REFUSED);
        }
    }
    if (st.connected) { /* a clean DISCONNECT; the PUBACKs were queued before the callbacks ran */
        mosquitto_disconnect(mosq);
        for (int i = 0; i < 10 && st.connected; i++)
            if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS)
                break;
    }

out:
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    free(client_id);
    free(st.in_filter);
    free(st.ack_topic);
    free(st.msg_topic);
    free(st.out_topic);
    return st.exit_code;
}
