/* Test-only fault injection, loaded with LD_PRELOAD into kms-replay by test_sync_failure.py: while the
 * file named by KMS_FAIL_SYNC_FLAG exists, fsync() and fdatasync() fail with EIO, as they do when a
 * disk or its controller reports a write error. Everything else reaches the C library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* EIO while the flag file exists, else the C library's function `name`. */
static int sync_or_fail(const char* name, int fd) {
    const char* flag = getenv("KMS_FAIL_SYNC_FLAG");
    if (flag && access(flag, F_OK) == 0) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    return real ? real(fd) : 0;
}

int fdatasync(int fd) { return sync_or_fail("fdatasync", fd); }
int fsync(int fd) { return sync_or_fail("fsync", fd); }
