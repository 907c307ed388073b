/*
 * Test of the C API, compiled against include/oxdelta.h and the built
 * library by .ci/run:  test OLD NEW WORKDIR
 * Round-trips the pair through every entry point and checks the error
 * paths (wrong OLD: non-zero, a message, no output). Ends with the line
 * "N passed, M failed"; exits non-zero on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oxdelta.h"

static int passed, failed;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (cond) {                                                            \
      passed++;                                                            \
    } else {                                                               \
      failed++;                                                            \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, " (last error: %s)\n", oxdelta_last_error());       \
    }                                                                      \
  } while (0)

/* The whole file, malloc'ed; *len set. Exits on failure: setup only. */
static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(2);
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static int same_file(const char *path, const unsigned char *want, size_t len) {
  size_t n;
  unsigned char *got = slurp(path, &n);
  int same = n == len && memcmp(got, want, len) == 0;
  free(got);
  return same;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Files in WORKDIR other than the ones a test left on purpose: checks
 * that failed applies leave no temporary behind. */
static int count_entries(const char *dir) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
  FILE *p = popen(cmd, "r");
  int n = -1;
  if (p) {
    if (fscanf(p, "%d", &n) != 1) n = -1;
    pclose(p);
  }
  return n;
}

/* A sink that appends to a growing buffer (offsets must be in order). */
struct membuf {
  unsigned char *data;
  size_t len, cap;
  int flushed;
};

static int mem_write(void *ctx, uint64_t offset, const uint8_t *data, size_t len) {
  struct membuf *m = ctx;
  if (offset != m->len) return 1;
  if (m->len + len > m->cap) {
    size_t cap = (m->len + len) * 2;
    unsigned char *d = realloc(m->data, cap);
    if (!d) return 2;
    m->data = d;
    m->cap = cap;
  }
  memcpy(m->data + m->len, data, len);
  m->len += len;
  return 0;
}

static int mem_flush(void *ctx) {
  ((struct membuf *)ctx)->flushed = 1;
  return 0;
}

/* A sink writing at offsets into a file, as an updater writes a partition. */
static int fd_write(void *ctx, uint64_t offset, const uint8_t *data, size_t len) {
  int fd = *(int *)ctx;
  while (len > 0) {
    ssize_t n = pwrite(fd, data, len, (off_t)offset);
    if (n <= 0) return 1;
    data += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return 0;
}

static int fd_flush(void *ctx) { return fsync(*(int *)ctx) == 0 ? 0 : 1; }

struct progress_seen {
  int calls;
  int cancel;
  uint64_t last_done, last_total;
  enum oxdelta_phase last_phase;
};

static int on_progress(void *ctx, enum oxdelta_phase phase, uint64_t done, uint64_t total) {
  struct progress_seen *p = ctx;
  p->calls++;
  p->last_phase = phase;
  p->last_done = done;
  p->last_total = total;
  return p->cancel;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s OLD NEW WORKDIR\n", argv[0]);
    return 2;
  }
  const char *old_path = argv[1], *new_path = argv[2], *dir = argv[3];
  char patch[4096], out[4096], keyname[4096], keyfile[4096], pubfile[4096],
      other[4096], bad_old[4096], target[4096], ip_patch[4096], st_patch[4096];
  snprintf(patch, sizeof patch, "%s/update.oxd", dir);
  snprintf(out, sizeof out, "%s/new.rebuilt", dir);
  snprintf(keyname, sizeof keyname, "%s/release", dir);
  snprintf(keyfile, sizeof keyfile, "%s/release.key", dir);
  snprintf(pubfile, sizeof pubfile, "%s/release.pub", dir);
  snprintf(other, sizeof other, "%s/other", dir);
  snprintf(bad_old, sizeof bad_old, "%s/old.wrong", dir);
  snprintf(target, sizeof target, "%s/partition.img", dir);
  snprintf(ip_patch, sizeof ip_patch, "%s/inplace.oxd", dir);
  snprintf(st_patch, sizeof st_patch, "%s/streaming.oxd", dir);

  size_t old_len, new_len;
  unsigned char *old = slurp(old_path, &old_len);
  unsigned char *new_data = slurp(new_path, &new_len);

  CHECK(strlen(oxdelta_version()) > 0, "version");
  CHECK(strcmp(oxdelta_last_error(), "") == 0, "no error yet");

  /* Keys. */
  CHECK(oxdelta_keygen(keyname) == OXDELTA_OK, "keygen");
  CHECK(oxdelta_keygen(keyname) == OXDELTA_E_KEY, "keygen refuses to overwrite");
  CHECK(strstr(oxdelta_last_error(), "already exists") != NULL, "message");
  CHECK(oxdelta_keygen(other) == OXDELTA_OK, "second key");
  size_t publen, otherlen;
  char *pub = (char *)slurp(pubfile, &publen);
  pub = realloc(pub, publen + 1);
  pub[publen] = 0;
  char otherpub_path[4200];
  snprintf(otherpub_path, sizeof otherpub_path, "%s.pub", other);
  char *otherpub = (char *)slurp(otherpub_path, &otherlen);
  otherpub = realloc(otherpub, otherlen + 1);
  otherpub[otherlen] = 0;

  /* Signed diff of the files, with progress. */
  struct progress_seen dp = {0};
  struct oxdelta_diff_options d = {.size = sizeof d};
  d.sign_key_path = keyfile;
  d.chunk_size = 256 << 10;
  d.progress = on_progress;
  d.progress_ctx = &dp;
  CHECK(oxdelta_diff_file(old_path, new_path, patch, &d) == OXDELTA_OK, "diff_file");
  CHECK(dp.calls > 0 && dp.last_done == dp.last_total, "diff progress: %d calls", dp.calls);

  struct oxdelta_info info = {.size = sizeof info};
  CHECK(oxdelta_info(patch, &info) == OXDELTA_OK, "info");
  CHECK(info.new_bytes == new_len && info.old_bytes == old_len, "info lengths");
  CHECK(info.is_signed && strlen(info.key_id) == 16, "info key id '%s'", info.key_id);
  CHECK(strcmp(info.engine, "suffix-array") == 0, "engine '%s'", info.engine);
  CHECK(strcmp(info.file_hash, "blake3") == 0, "file hash '%s'", info.file_hash);
  CHECK(info.chunks == (new_len + (256 << 10) - 1) / (256 << 10), "chunks %llu",
        (unsigned long long)info.chunks);
  CHECK(info.size == sizeof info, "size kept");

  /* Apply with the trusted key, with progress. */
  struct progress_seen ap = {0};
  struct oxdelta_apply_options a = {.size = sizeof a};
  a.pubkey = pub;
  a.progress = on_progress;
  a.progress_ctx = &ap;
  CHECK(oxdelta_apply_file(old_path, patch, out, &a) == OXDELTA_OK, "apply_file");
  CHECK(same_file(out, new_data, new_len), "apply_file rebuilt NEW");
  CHECK(ap.last_phase == OXDELTA_PHASE_APPLYING && ap.last_done == new_len,
        "apply progress ends at NEW's length");
  CHECK(oxdelta_verify(patch, NULL, &a) == OXDELTA_OK, "verify");
  CHECK(oxdelta_verify(patch, old_path, NULL) == OXDELTA_OK, "verify against OLD");
  /* Outputs: an existing one is replaced only with overwrite; the patch is
   * never an output, not even with overwrite. */
  CHECK(oxdelta_apply_file(old_path, patch, out, &a) == OXDELTA_E_OUTPUT, "OUT exists");
  CHECK(strstr(oxdelta_last_error(), "exists") != NULL, "message: %s", oxdelta_last_error());
  CHECK(oxdelta_diff_file(old_path, new_path, patch, &d) == OXDELTA_E_OUTPUT, "PATCH exists");
  a.overwrite = 1;
  CHECK(oxdelta_apply_file(old_path, patch, out, &a) == OXDELTA_OK, "apply_file, overwrite");
  CHECK(oxdelta_apply_file(old_path, patch, patch, &a) == OXDELTA_E_OUTPUT, "OUT is the patch");
  a.overwrite = 0;
  d.overwrite = 1;
  CHECK(oxdelta_diff_file(old_path, new_path, old_path, &d) == OXDELTA_E_OUTPUT, "PATCH is OLD");
  CHECK(same_file(old_path, old, old_len), "OLD untouched");
  d.overwrite = 0;
  unlink(out);
  int entries = count_entries(dir);

  /* Wrong OLD: NEW in its place (another length), then OLD with one byte
   * changed (same length: only the hash tells). */
  CHECK(oxdelta_apply_file(new_path, patch, out, &a) == OXDELTA_E_WRONG_OLD, "wrong OLD");
  CHECK(strstr(oxdelta_last_error(), "OLD") != NULL, "message: %s", oxdelta_last_error());
  CHECK(!exists(out), "no output for a wrong OLD");
  old[old_len / 2] ^= 0x5a;
  FILE *f = fopen(bad_old, "wb");
  fwrite(old, 1, old_len, f);
  fclose(f);
  old[old_len / 2] ^= 0x5a;
  entries++;
  CHECK(oxdelta_apply_file(bad_old, patch, out, &a) == OXDELTA_E_WRONG_OLD, "changed OLD");
  CHECK(strlen(oxdelta_last_error()) > 0, "a message");
  CHECK(!exists(out), "no output for a changed OLD");
  CHECK(count_entries(dir) == entries, "no temporary left behind");
  CHECK(oxdelta_verify(patch, bad_old, NULL) == OXDELTA_E_WRONG_OLD, "verify: wrong OLD");

  /* Another trusted key: refused before anything is written. */
  a.pubkey = otherpub;
  CHECK(oxdelta_apply_file(old_path, patch, out, &a) == OXDELTA_E_SIGNATURE, "foreign key");
  CHECK(!exists(out), "no output for a foreign key");
  a.pubkey = "not a key";
  CHECK(oxdelta_apply_file(old_path, patch, out, &a) == OXDELTA_E_KEY, "bad key text");
  a.pubkey = pub;

  /* Cancel through progress. */
  ap.cancel = 1;
  CHECK(oxdelta_apply_file(old_path, patch, out, &a) == OXDELTA_E_CANCELLED, "cancel");
  CHECK(!exists(out), "no output when cancelled");
  ap.cancel = 0;

  /* In memory: diff to a sink, apply into a caller buffer. */
  struct membuf mp = {0};
  struct oxdelta_sink ms = {.size = sizeof ms, .ctx = &mp, .write = mem_write, .flush = mem_flush};
  struct oxdelta_diff_options d2 = {.size = sizeof d2};
  d2.codec = "lz4";
  d2.threads = 1;
  CHECK(oxdelta_diff_bytes(old, old_len, new_data, new_len, &ms, &d2) == OXDELTA_OK,
        "diff_bytes");
  CHECK(mp.flushed && mp.len > 0 && mp.len < new_len, "patch of %zu bytes", mp.len);
  struct oxdelta_info mi = {.size = sizeof mi};
  CHECK(oxdelta_info_bytes(mp.data, mp.len, &mi) == OXDELTA_OK && mi.new_bytes == new_len &&
            !mi.is_signed && mi.key_id[0] == 0,
        "info_bytes");
  unsigned char *rebuilt = malloc(new_len);
  size_t got = 0;
  CHECK(oxdelta_apply_bytes(old, old_len, mp.data, mp.len, rebuilt, new_len - 1, &got, NULL) ==
            OXDELTA_E_BUFFER_TOO_SMALL,
        "short buffer");
  CHECK(got == new_len, "length needed: %zu", got);
  CHECK(oxdelta_apply_bytes(old, old_len, mp.data, mp.len, rebuilt, new_len, &got, NULL) ==
            OXDELTA_OK,
        "apply_bytes");
  CHECK(got == new_len && memcmp(rebuilt, new_data, new_len) == 0, "apply_bytes rebuilt NEW");
  CHECK(oxdelta_apply_bytes(new_data, new_len, mp.data, mp.len, rebuilt, new_len, &got, NULL) ==
            OXDELTA_E_WRONG_OLD,
        "apply_bytes: wrong OLD");
  CHECK(oxdelta_apply_bytes(old, old_len, mp.data, mp.len, rebuilt, new_len, &got, &a) ==
            OXDELTA_E_SIGNATURE,
        "apply_bytes: unsigned patch with a trusted key");
  mp.data[mp.len - 10] ^= 1; /* inside the last chunk's payload */
  CHECK(oxdelta_apply_bytes(old, old_len, mp.data, mp.len, rebuilt, new_len, &got, NULL) ==
            OXDELTA_E_BAD_PATCH,
        "apply_bytes: damaged patch");
  mp.data[mp.len - 10] ^= 1;

  /* Apply to a sink writing at offsets into a "partition". */
  int fd = open(target, O_RDWR | O_CREAT | O_TRUNC, 0644);
  struct oxdelta_sink fs = {.size = sizeof fs, .ctx = &fd, .write = fd_write, .flush = fd_flush};
  CHECK(oxdelta_apply_to_sink(old_path, patch, &fs, &a) == OXDELTA_OK, "apply_to_sink");
  close(fd);
  CHECK(same_file(target, new_data, new_len), "apply_to_sink wrote NEW");
  fd = open(target, O_RDWR | O_TRUNC);
  CHECK(oxdelta_apply_to_sink(bad_old, patch, &fs, &a) == OXDELTA_E_WRONG_OLD,
        "apply_to_sink: wrong OLD");
  struct stat st;
  fstat(fd, &st);
  CHECK(st.st_size == 0, "nothing written for a wrong OLD");
  close(fd);

  /* ABI rules: a size too small, a newer caller's unknown field. */
  struct oxdelta_apply_options tiny = {.size = sizeof(size_t)};
  CHECK(oxdelta_apply_file(old_path, patch, out, &tiny) == OXDELTA_E_INVALID_ARGUMENT,
        "size too small");
  struct {
    struct oxdelta_apply_options o;
    uint64_t future_field;
  } newer = {.o = {.size = sizeof newer}};
  CHECK(oxdelta_verify(patch, NULL, &newer.o) == OXDELTA_OK, "newer caller, unknown field zero");
  newer.future_field = 1;
  CHECK(oxdelta_verify(patch, NULL, &newer.o) == OXDELTA_E_INVALID_ARGUMENT,
        "newer caller, unknown field set");
  CHECK(oxdelta_apply_file(NULL, patch, out, NULL) == OXDELTA_E_INVALID_ARGUMENT, "NULL path");
  CHECK(oxdelta_info(patch, NULL) == OXDELTA_E_INVALID_ARGUMENT, "NULL info");
  struct oxdelta_diff_options bad = {.size = sizeof bad};
  bad.codec = "gzip";
  CHECK(oxdelta_diff_file(old_path, new_path, patch, &bad) == OXDELTA_E_INVALID_ARGUMENT,
        "unknown codec");

  /* The streaming engine: its patches carry block-list hashes, which
   * info says; a caller compiled before file_hash existed (its size ends
   * at engine) gets the rest and keeps its own bytes beyond. */
  struct oxdelta_diff_options sd = {.size = sizeof sd};
  sd.memory = 64 << 20;
  CHECK(oxdelta_diff_file(old_path, new_path, st_patch, &sd) == OXDELTA_OK, "streaming diff");
  struct oxdelta_info si = {.size = sizeof si};
  CHECK(oxdelta_info(st_patch, &si) == OXDELTA_OK, "streaming info");
  CHECK(strcmp(si.engine, "streaming") == 0, "engine '%s'", si.engine);
  CHECK(strcmp(si.file_hash, "blake3-blocks") == 0, "file hash '%s'", si.file_hash);
  struct oxdelta_info older;
  memset(&older, 0x77, sizeof older);
  older.size = offsetof(struct oxdelta_info, engine) + sizeof older.engine;
  CHECK(oxdelta_info(st_patch, &older) == OXDELTA_OK && strcmp(older.engine, "streaming") == 0,
        "older caller's info");
  CHECK((unsigned char)older.file_hash[sizeof older.file_hash - 1] == 0x77,
        "older caller's bytes beyond its size kept");
  CHECK(oxdelta_apply_file(old_path, st_patch, out, NULL) == OXDELTA_OK, "streaming apply");
  CHECK(same_file(out, new_data, new_len), "streaming patch rebuilt NEW");
  unlink(out);

  /* In place: the updater's case, signed, then run again (up to date). */
  struct oxdelta_diff_options ipd = {.size = sizeof ipd};
  ipd.in_place = 1;
  ipd.sign_key_path = keyfile;
  CHECK(oxdelta_diff_file(old_path, new_path, ip_patch, &ipd) == OXDELTA_OK, "in-place diff");
  f = fopen(target, "wb");
  fwrite(old, 1, old_len, f);
  fclose(f);
  struct oxdelta_in_place_report r = {.size = sizeof r};
  CHECK(oxdelta_apply_in_place(target, patch, &a, &r) == OXDELTA_E_NOT_IN_PLACE,
        "not an in-place patch");
  CHECK(oxdelta_apply_in_place(target, ip_patch, &a, &r) == OXDELTA_OK, "apply_in_place");
  CHECK(same_file(target, new_data, new_len), "in place: NEW");
  CHECK(!r.already_up_to_date && r.new_bytes == new_len && r.is_signed, "report");
  CHECK(oxdelta_apply_in_place(target, ip_patch, &a, &r) == OXDELTA_OK && r.already_up_to_date,
        "second run: up to date");

  free(old);
  free(new_data);
  free(rebuilt);
  free(mp.data);
  free(pub);
  free(otherpub);
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
