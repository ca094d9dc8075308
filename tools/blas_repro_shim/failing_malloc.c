/* For `python -m tools.blas_repro`: a malloc that can be told to fail, as it does when memory runs out.
 *
 * Loaded with LD_PRELOAD. `failing_malloc_set(low, high)` makes every malloc of low..high bytes return
 * NULL from then on (0, 0 stops that); `failing_malloc_asked()` counts the mallocs of that size asked for
 * since. torch's own tensors are allocated with posix_memalign, which is left alone, so only what
 * libraries (here MKL) allocate with malloc is refused.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

static size_t fail_low = 0, fail_high = 0;
static unsigned long asked = 0;

void failing_malloc_set(size_t low, size_t high) { fail_low = low; fail_high = high; asked = 0; }
unsigned long failing_malloc_asked(void) { return asked; }

void *malloc(size_t size) {
    static void *(*real_malloc)(size_t);
    if (!real_malloc) real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    if (fail_high && size >= fail_low && size <= fail_high) {
        asked++;
        errno = ENOMEM;
        return NULL;
    }
    return real_malloc(size);
}
