// SPDX-License-Identifier: Apache-2.0
/*
 * SHA-256: the FIPS 180-4 examples, and every length from 0 to 200 bytes (each padding case)
 * against coreutils' sha256sum, a real process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "sha256.h"

static void hex(const uint8_t d[SHA256_LEN], char out[2 * SHA256_LEN + 1])
{
	for (int i = 0; i < SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void expect(const void *data, size_t len, const char *want)
{
	uint8_t d[SHA256_LEN];
	char got[2 * SHA256_LEN + 1];

	sha256__digest(data, len, d);
	hex(d, got);
	assert_string_equal(got, want);
}

static void test_fips_examples(void **state)
{
	char *million = malloc(1000000);

	expect(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	expect("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	assert_non_null(million);
	memset(million, 'a', 1000000);
	expect(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);
}

static void test_against_sha256sum(void **state)
{
	char buf[201], dir[] = "/tmp/mcpfence-sha-XXXXXX", path[64], cmd[96], want[128];
	FILE *f;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 37 + 11);
	assert_non_null(mkdtemp(dir));
	for (size_t len = 0; len < sizeof(buf); len++) {
		snprintf(path, sizeof(path), "%s/%03zu", dir, len);
		f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(buf, 1, len, f), len);
		fclose(f);
	}
	/* one process for all: the lines come in the order of the names */
	snprintf(cmd, sizeof(cmd), "cd %s && sha256sum *", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	for (size_t len = 0; len < sizeof(buf); len++) {
		assert_non_null(fgets(want, sizeof(want), f));
		want[2 * SHA256_LEN] = 0;
		expect(buf, len, want);
	}
	assert_int_equal(pclose(f), 0);
	for (size_t len = 0; len < sizeof(buf); len++) {
		snprintf(path, sizeof(path), "%s/%03zu", dir, len);
		unlink(path);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fips_examples),
		cmocka_unit_test(test_against_sha256sum),
	};

	return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
