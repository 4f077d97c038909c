/* resp.h: the Redis protocol (RESP2) front end of the store, one state machine per connection.
 *
 * Bytes go in with resp_feed; complete commands run against the store at once and their replies
 * collect in the connection's output, which the driver sends and then releases with
 * resp_consumed. No I/O happens here. Memory per connection is bounded: one request of at most
 * RESP_MAX_REQUEST bytes is buffered, and input stops being processed while more than
 * RESP_OUT_HIGH bytes of replies wait to be sent (call resp_feed(c, NULL, 0) after sending to go
 * on). Malformed input gets Redis's protocol error and the connection is to be closed once that
 * reply is sent, as Redis does; QUIT likewise. */
#ifndef KVS_RESP_H
#define KVS_RESP_H
#include <stddef.h>

#include "store.h"

/* The largest bulk string Redis accepts (proto-max-bulk-len): longer ones are protocol errors. */
#define RESP_MAX_BULK (512LL * 1024 * 1024)
/* The largest request buffered (all its arguments): larger ones are refused, and the client
 * closed, like Redis's client-query-buffer-limit. */
#define RESP_MAX_REQUEST (64u * 1024 * 1024)
/* Longest inline command or header line (Redis's PROTO_INLINE_MAX_SIZE). */
#define RESP_INLINE_MAX (64u * 1024)
/* Replies waiting beyond this stop input processing until they are sent. */
#define RESP_OUT_HIGH (256u * 1024)

typedef struct resp_conn resp_conn;

/* A new connection on store `k`, or NULL without memory. */
resp_conn *resp_new(kvs *k);
void resp_free(resp_conn *c);
/* Buffers `len` input bytes and runs every complete command it can. Returns 1 once the
 * connection is to be closed after its pending output (QUIT, protocol error), else 0. */
int resp_feed(resp_conn *c, const void *data, size_t len);
/* The replies not yet sent. */
const char *resp_output(resp_conn *c, size_t *len);
/* Releases the first `n` bytes of output (they were sent). */
void resp_consumed(resp_conn *c, size_t n);
/* 1 while the connection holds input it has not run yet (a partial request, or input held back
 * by unsent output). */
int resp_pending_input(const resp_conn *c);

/* Redis glob matching (*, ?, [set], [^set], [a-z], \x) of `s` against `pat`: 1 on a match. */
int resp_glob(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

#endif
