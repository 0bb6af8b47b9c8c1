/* Test-only fault injection, loaded with LD_PRELOAD into kms-replay by test_sync_failure.py: while the
 * file named by KMS_FAIL_SYNC_FLAG exists, fsync() and fdatasync() fail with EIO, as they do when a
 * disk or its controller reports a write error. Everything else reaches the C library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
    const char* flag = getenv("KMS_FAIL_SYNC_FLAG");
    return flag && access(flag, F_OK) == 0;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
