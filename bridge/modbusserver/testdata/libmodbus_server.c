/* Reference Modbus TCP server for the throughput benchmark: libmodbus
 * (Debian libmodbus-dev) serving 200 holding registers to many clients with
 * the select() loop of libmodbus's own multi-client example.
 * Build: cc -O2 -o libmodbus_server libmodbus_server.c $(pkg-config --cflags --libs libmodbus)
 * Run:   ./libmodbus_server PORT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <modbus.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    modbus_mapping_t *map = modbus_mapping_new(0, 0, 200, 0);
    if (!ctx || !map) { fprintf(stderr, "init: %s\n", modbus_strerror(errno)); return 1; }
    for (int i = 0; i < 200; i++) map->tab_registers[i] = (uint16_t)i;
    int server = modbus_tcp_listen(ctx, 32);
    if (server < 0) { fprintf(stderr, "listen: %s\n", modbus_strerror(errno)); return 1; }
    printf("listening\n");
    fflush(stdout);
    fd_set all; FD_ZERO(&all); FD_SET(server, &all);
    int maxfd = server;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    for (;;) {
        fd_set rd = all;
        if (select(maxfd + 1, &rd, NULL, NULL, NULL) < 0) { if (errno == EINTR) continue; return 1; }
        for (int fd = 0; fd <= maxfd; fd++) {
            if (!FD_ISSET(fd, &rd)) continue;
            if (fd == server) {
                int c = accept(server, NULL, NULL);
                if (c >= 0) { FD_SET(c, &all); if (c > maxfd) maxfd = c; }
                continue;
            }
            modbus_set_socket(ctx, fd);
            int rc = modbus_receive(ctx, query);
            if (rc > 0) {
                modbus_reply(ctx, query, rc, map);
            } else if (rc == -1) {
                close(fd); FD_CLR(fd, &all);
            }
        }
    }
}
