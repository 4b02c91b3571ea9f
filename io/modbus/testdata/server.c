/* Modbus TCP server on libmodbus for the io/modbus benchmarks.
 * Usage: server PORT — serves 200 of each area on 127.0.0.1:PORT, one client
 * at a time, until killed. */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
	modbus_mapping_t *map = modbus_mapping_new(200, 200, 200, 200);
	if (ctx == NULL || map == NULL) {
		fprintf(stderr, "server: %s\n", modbus_strerror(errno));
		return 1;
	}
	for (int i = 0; i < 200; i++)
		map->tab_registers[i] = map->tab_input_registers[i] = (uint16_t)i;
	int s = modbus_tcp_listen(ctx, 4);
	if (s < 0) {
		fprintf(stderr, "server: listen: %s\n", modbus_strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
	for (;;) {
		if (modbus_tcp_accept(ctx, &s) < 0)
			continue;
		for (;;) {
			int n = modbus_receive(ctx, q);
			if (n > 0)
				modbus_reply(ctx, q, n, map);
			else if (n < 0)
				break;
		}
		modbus_close(ctx);
	}
}
