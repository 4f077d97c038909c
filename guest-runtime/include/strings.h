/* strings.h: the BSD names, all in string.h here (twz libc shim). */
#include <string.h>
