/* Modbus server on libmodbus for the io/modbus tests and benchmarks.
 * Usage: server PORT — Modbus TCP on 127.0.0.1:PORT, one client at a time;
 *        server rtu DEVICE — Modbus RTU (unit 1) on DEVICE at 19200 8E1.
 * Serves 200 of each area (register i holds i, then any values given
 * after the DEVICE as further arguments from address 0) until killed. */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s PORT | %s rtu DEVICE [REG...]\n", argv[0], argv[0]);
		return 2;
	}
	modbus_mapping_t *map = modbus_mapping_new(200, 200, 200, 200);
	if (map == NULL) {
		fprintf(stderr, "server: %s\n", modbus_strerror(errno));
		return 1;
	}
	for (int i = 0; i < 200; i++)
		map->tab_registers[i] = map->tab_input_registers[i] = (uint16_t)i;
	if (strcmp(argv[1], "rtu") == 0 && argc >= 3) {
		for (int i = 3; i < argc && i - 3 < 200; i++)
			map->tab_registers[i - 3] = map->tab_input_registers[i - 3] = (uint16_t)strtol(argv[i], NULL, 0);
		modbus_t *rtu = modbus_new_rtu(argv[2], 19200, 'E', 8, 1);
		if (rtu == NULL || modbus_set_slave(rtu, 1) < 0 || modbus_connect(rtu) < 0) {
			fprintf(stderr, "server: rtu %s: %s\n", argv[2], modbus_strerror(errno));
			return 1;
		}
		printf("ready\n");
		fflush(stdout);
		uint8_t q[MODBUS_RTU_MAX_ADU_LENGTH];
		for (;;) {
			int n = modbus_receive(rtu, q);
			if (n > 0)
				modbus_reply(rtu, q, n, map);
		}
	}
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
	if (ctx == NULL) {
		fprintf(stderr, "server: %s\n", modbus_strerror(errno));
		return 1;
	}
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
