/* libmodbus client for the io/modbus throughput benchmark.
 * Usage: client PORT N — reads 100 holding registers from address 0, N
 * times back to back, and prints the mean nanoseconds per request. */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: %s PORT N\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]);
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
	if (ctx == NULL || modbus_connect(ctx) < 0) {
		fprintf(stderr, "client: connect: %s\n", modbus_strerror(errno));
		return 1;
	}
	modbus_set_slave(ctx, 1);
	uint16_t regs[100];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (modbus_read_registers(ctx, 0, 100, regs) != 100) {
			fprintf(stderr, "client: read: %s\n", modbus_strerror(errno));
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.0f\n", ns / n);
	modbus_close(ctx);
	modbus_free(ctx);
	return 0;
}
