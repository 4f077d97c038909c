/* twz.h: the twz runtime's C interface (guest programs in C).
 *
 * Everything here is a plain library call at CPL3; those that cost a VM exit say so. Functions
 * that can fail return 0 (or a count) on success and a negative errno (<errno.h>) on failure. */
#ifndef _TWZ_H
#define _TWZ_H
#include <stddef.h>
#include <stdint.h>
#include "_twz_libc.h"
TWZ_BEGIN_DECLS

/* Console streams for twz_console_write. */
#define TWZ_STDOUT 1
#define TWZ_STDERR 2

/* Buffers `len` bytes for a console stream (stdout is sent at each newline and when the buffer
 * fills, stderr at the end of the call; no VM exit, the ring carries them). */
void twz_console_write(int stream, const void *buf, size_t len);
/* Sends everything buffered on both console streams. */
void twz_console_flush(void);
/* Reads up to `len` bytes of standard input, blocking until at least one: the count, 0 at end of
 * input, or a negative errno. One VM exit per 4 KiB refill. */
long twz_stdin_read(void *buf, size_t len);
/* 1 when the VMM's standard input is a terminal (an interactive shell may prompt), else 0. */
int twz_stdin_is_tty(void);
/* Nanoseconds on a monotonic clock (rdtsc, about 9 ns, no exit). */
uint64_t twz_monotonic_ns(void);
/* Nanoseconds since the Unix epoch (rdtsc anchored at boot, no exit). */
uint64_t twz_wall_ns(void);
/* Fills `buf` with random bytes from the host (one exit per 4 KiB): 0 or a negative errno. */
int twz_random(void *buf, size_t len);
/* Bytes of the heap never handed out yet (the heap's high-water room). */
size_t twz_heap_untouched(void);
/* Takes `size` bytes (page aligned) from the untouched heap for the rest of the run, without
 * malloc's rounding to a power of two: for one big region such as SQLite's memsys5 heap. Never
 * freed; NULL if it does not fit. */
void *twz_heap_carve(size_t size);
/* ---- Persistent objects ----
 * An object of the host's store is up to 1 GiB: a null page, a data region, then the log, the
 * Foreign Object Table and the metadata header. A twz_obj is a handle on a mapped object; stores
 * into it are plain stores (no VM exit) that survive the VMM being killed, and become durable
 * against power loss when flushed. Used as a byte stream (a file), an object keeps its bytes at the
 * start of its data region and its length in the metadata header (the allocation top, flagged
 * RAW), which `twz-vmm obj ls/show` report as the size in use. */
typedef struct twz_obj twz_obj;
/* An object ID: 16 bytes as the host reads them (a little-endian 128-bit number; `obj ls` prints
 * it as 32 hex digits, most significant first). */
typedef struct twz_objid {
    uint8_t bytes[16];
} twz_objid;

/* Creates an empty object, bound to `name` unless it is NULL, and opens it writable in `*out`.
 * -EEXIST if the name is bound, -ENAMETOOLONG past 96 bytes. One VM exit to create, one to map. */
int twz_obj_create(const char *name, twz_obj **out);
/* Opens the object bound to `name`, writable: -ENOENT if the name is unbound. */
int twz_obj_open(const char *name, twz_obj **out);
/* Opens object `*id`, writable if `writable` is non-zero (else a store into it ends the run with a
 * fault naming the object): -ENOENT if there is no such object. */
int twz_obj_open_id(const twz_objid *id, int writable, twz_obj **out);
/* Frees the handle; the object and its contents stay. */
void twz_obj_close(twz_obj *o);
/* Writes the object's ID to `*out`. */
int twz_obj_id(twz_obj *o, twz_objid *out);
/* Binds `name` to the object: -EEXIST if the name is bound. */
int twz_obj_bind(twz_obj *o, const char *name);
/* The address of the first byte of the object's data region, or NULL if it cannot be mapped. The
 * address stays valid while the object stays mapped: a run maps up to `run --slots` objects at
 * once and evicts the least recently mapped beyond that, so call this again after opening others. */
void *twz_obj_base(twz_obj *o);
/* The most bytes the data region (and so a byte stream) holds: 1 GiB less the null page, the log,
 * the FOT and the metadata (about 1019 MiB). */
uint64_t twz_obj_max_size(void);
/* The run's durability mode (twz-vmm run --durability), for what a flush should wait for. */
#define TWZ_DURABILITY_NONE 0   /* nothing: stores survive the VMM being killed, not power loss */
#define TWZ_DURABILITY_COMMIT 1 /* each commit flushes what it wrote */
#define TWZ_DURABILITY_GROUP 2  /* commits may be flushed together */
int twz_obj_durability(void);
/* The byte stream's length (0 for a new object), or a negative errno. For an object built by the
 * persistent allocator it is the size in use. */
int64_t twz_obj_size(twz_obj *o);
/* Sets the byte stream's length and marks the object a byte stream; bytes are neither cleared nor
 * flushed. -ENOSPC beyond twz_obj_max_size() or when the filesystem is full, -EACCES on a
 * read-only object. */
int twz_obj_set_size(twz_obj *o, uint64_t size);
/* Makes sure the file space behind the byte stream's first `size` bytes exists, length unchanged,
 * so that stores there cannot fail for want of space: call it before storing past the end. 0;
 * -ENOSPC when the store's filesystem is full (or beyond twz_obj_max_size()), -EACCES on a
 * read-only object. (twz_obj_set_size reserves too, but after the stores it publishes.) */
int twz_obj_reserve(twz_obj *o, uint64_t size);
/* Makes data bytes `off .. off+len` durable (offsets from twz_obj_base), and the length if
 * twz_obj_set_size changed it since the last flush: one host call (one fence),
 * waited for. -EINVAL for a range beyond the data region. */
int twz_obj_flush(twz_obj *o, uint64_t off, uint64_t len);
/* One byte range of a stream for twz_obj_flush_many (offsets from twz_obj_base). */
typedef struct twz_extent {
    uint64_t off;
    uint64_t len;
} twz_extent;
#define TWZ_FLUSH_MANY_MAX 64
/* twz_obj_flush for `n` ranges (at most TWZ_FLUSH_MANY_MAX, else -E2BIG) behind one fence, with
 * the length if it changed. Cheaper than one call per range: a durable run waits for the disk
 * once. */
int twz_obj_flush_many(twz_obj *o, const twz_extent *ranges, size_t n);

/* ---- Transactions, allocation inside objects, persistent pointers ----
 * A transaction is an undo log in the log region of one object, its anchor; it may record ranges
 * in any mapped writable object. Either all its stores survive a crash of the guest or of the VMM,
 * or none do: the host rolls back an unfinished transaction the next time the anchor is opened.
 * What a commit waits for follows `twz-vmm run --durability` (none: nothing; commit: the host's
 * sync of the recorded ranges, one request per fence; group: the same, except that its last flush
 * waits for twz_sync or the anchor's next transaction). One transaction per anchor at a time. */
typedef struct twz_tx twz_tx;
/* Begins a transaction anchored in `o`'s log, in `*out`. -EBUSY if the log holds an unfinished
 * transaction (another open twz_tx on the same anchor). */
int twz_tx_begin(twz_obj *o, twz_tx **out);
/* Saves the `len` bytes at `p` (in a mapped object's data region) so an abort or a crash restores
 * them: call it BEFORE storing there. -EINVAL outside an object's data, -EACCES on a read-only
 * object, -E2BIG when the transaction no longer fits in its log (about 1 MiB; abort it). */
int twz_tx_record(twz_tx *tx, const void *p, size_t len);
/* One range for twz_tx_record_many. */
typedef struct twz_range {
    const void *addr;
    size_t len;
} twz_range;
/* twz_tx_record for `n` ranges (at most 16, else -E2BIG) behind one wait for the disk in a
 * durable run, where each twz_tx_record waits once: store into none of them before it returns.
 * On an error none, some or all of them may be recorded: abort the transaction. */
int twz_tx_record_many(twz_tx *tx, const twz_range *ranges, size_t n);
/* twz_tx_record_many without the wait: the ranges are saved now, but store into none of them
 * before twz_tx_fence returns. Costs no disk wait of its own when something else waits first
 * (twz_obj_alloc, a twz_tx_record*): prepare, allocate, then twz_tx_fence, which is then free. */
int twz_tx_prepare_many(twz_tx *tx, const twz_range *ranges, size_t n);
/* Waits until every range recorded or prepared so far is durable (free if none is waiting). */
int twz_tx_fence(twz_tx *tx);
/* Makes the transaction's stores permanent and frees `tx`. */
int twz_tx_commit(twz_tx *tx);
/* Puts back every recorded range (newest first) and frees `tx`. */
int twz_tx_abort(twz_tx *tx);
/* Adds the `len` bytes at `p` (stored without twz_tx_record, e.g. a fresh twz_obj_alloc block)
 * to what the commit makes durable: they go with the next record's wait for the disk, or with one
 * of their own at commit (before the commit entry, whose checksum does not cover them). */
int twz_tx_flush(twz_tx *tx, const void *p, size_t len);
/* Makes every transaction committed so far durable (all anchors), with one host request, and
 * waits. In --durability group commits do not wait: call this before acknowledging any write
 * (for example once per batch of requests, then send all the replies). Cheap when there is
 * nothing pending (none, commit). */
int twz_sync(void);
/* Allocates `size` bytes inside `o` as part of the transaction (undone if it aborts) and stores
 * their address in `*out` (16-byte aligned, contents undefined; no need to record them before
 * the first stores). The first allocation in an object sets up its allocator and reserves
 * 4 KiB, or the byte stream's length if larger, at twz_obj_base for the object's own struct.
 * -ENOSPC when the object is full. The address moves if the object is evicted and remapped:
 * keep twz_ptr values in objects, not addresses. */
int twz_obj_alloc(twz_tx *tx, twz_obj *o, uint64_t size, void **out);
/* Frees the block at `p` (from twz_obj_alloc) as part of the transaction. -EINVAL if `p` is not
 * an allocated block (or was already freed). A later twz_obj_alloc in the same transaction may
 * hand the block out again, and what is then stored there without twz_tx_record stays if the
 * transaction aborts: free blocks after the transaction's last allocation. */
int twz_obj_free(twz_tx *tx, void *p);

/* A persistent (invariant) pointer, stored inside an object: an index into the object's FOT
 * (0 = the same object) and an offset. It means the same thing in every run. */
typedef uint64_t twz_ptr;
/* Stores at `*field` (a twz_ptr inside `container`'s mapped memory) a pointer to `target` (an
 * address in any mapped object's data region, or NULL for the null pointer). A target in another
 * object gets a FOT entry in `container` (an existing entry for that object is reused). The store
 * is not logged: twz_tx_record the field first when inside a transaction. -EINVAL if `field` is
 * not in `container` or `target` not in a mapped object's data, -ENOSPC if the FOT is full. */
int twz_ptr_store(twz_obj *container, twz_ptr *field, const void *target);
/* Follows `*field` (a twz_ptr stored inside a mapped object) and stores the direct address in
 * `*out`, mapping the target object on first use. -EINVAL for a null pointer, an offset outside
 * the data region, a field not inside an object or an empty FOT entry; -ENOENT if the target
 * object does not exist. */
int twz_ptr_resolve(const twz_ptr *field, void **out);

/* ---- Stream device: TCP connections served by the VMM (twz-vmm run --listen ADDR) ----
 * Asynchronous, like io_uring: each call below queues one operation on the ring and returns at
 * once (0, or a negative errno if it could not be queued); the operation completes later and its
 * completion is delivered, carrying the caller's `tag`, by twz_net_wait. A buffer passed to
 * twz_net_recv or twz_net_send must stay untouched until that operation completes. No VM exit
 * while the VMM's event loop is busy; twz_net_wait exits only when it has to sleep. */
#define TWZ_NET_ACCEPT 3
#define TWZ_NET_RECV 4
#define TWZ_NET_SEND 5
#define TWZ_NET_CLOSE 6
/* One completion. */
typedef struct twz_net_event {
    uint64_t tag;   /* the tag given when the operation was queued */
    int64_t result; /* per operation below; a negative errno on failure */
    int32_t op;     /* TWZ_NET_ACCEPT, TWZ_NET_RECV, TWZ_NET_SEND or TWZ_NET_CLOSE */
    int32_t conn;   /* the connection (for ACCEPT: the new one, or -1 on failure) */
} twz_net_event;
/* 1 when the run has a stream device (--listen), else 0. */
int twz_net_listening(void);
/* Takes the next client connection: completes with result = its connection number (also in
 * `conn`). -EBADF at once without --listen. */
int twz_net_accept(uint64_t tag);
/* Receives up to `len` bytes into `buf`: completes with the count once at least one byte
 * arrived, 0 when the client closed its side, or -ECONNRESET. One receive per connection at a
 * time (-EBUSY); the VMM reads a connection only while a receive is outstanding on it. */
int twz_net_recv(int conn, void *buf, size_t len, uint64_t tag);
/* Sends `len` bytes from `buf`, in order with earlier sends: completes with `len` when all are
 * handed to the host's socket, or -EPIPE / -ECONNRESET if the client went away. */
int twz_net_send(int conn, const void *buf, size_t len, uint64_t tag);
/* Closes the connection after its outstanding sends; an outstanding receive completes with
 * -ECANCELED first. Completes with 0; the number may then be reused by an accept. */
int twz_net_close(int conn, uint64_t tag);
/* Waits up to `timeout_ns` (-1: no limit, 0: just look) for completions and copies up to `max`
 * of them to `events`: the count (0 on timeout), or a negative errno. */
int twz_net_wait(twz_net_event *events, int max, int64_t timeout_ns);

/* Deletes the object `*id` and every name bound to it (see OBJ_DELETE): 0, -ENOENT, -EACCES or
 * -EBUSY while another guest has it open. */
int twz_obj_delete(const twz_objid *id);
/* Removes the binding of `name`; the object stays: 0 or -ENOENT. */
int twz_obj_unbind(const char *name);
/* Copies why the most recent refused host call was refused (for example "capability expired")
 * into `buf` as a NUL-terminated string, truncated to `len` bytes: the text's length, 0 if
 * none. */
size_t twz_last_error(char *buf, size_t len);

/* Flushes the console and ends the run with `status`. */
_Noreturn void twz_exit(int status);

TWZ_END_DECLS
#endif
