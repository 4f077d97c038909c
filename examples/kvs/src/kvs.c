/* kvs: placeholder until the store lands. */
#include <stdio.h>
int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kvs: not implemented yet\n");
    return 1;
}
