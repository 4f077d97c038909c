/* shell.h: the interactive shell (`twz-vmm run kvs` with no command). */
#ifndef KVS_SHELL_H
#define KVS_SHELL_H
#include "store.h"

/* Runs commands from standard input, redis-cli style, until end of input or QUIT. Returns the
 * exit status: 0, or 1 when input was not a terminal and a command failed. */
int kvs_shell(kvs *k);

#endif
