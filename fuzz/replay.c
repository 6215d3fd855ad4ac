/* Replays files through a harness without libFuzzer: every file named, and every file of
 * every directory named (not recursively). CTest runs it over the seed corpora, with gcc too. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzzpki.h"

/* Generous: libFuzzer's -max_len of every target is far below. */
#define REPLAY_MAX (1024 * 1024)

static int
replay_file(const char *path)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t n = 0;
	FILE *f;
	int rc = -1;

	if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &st) < 0 ||
	    st.st_size > REPLAY_MAX) {
		fprintf(stderr, "replay: %s: cannot read (or larger than %d bytes)\n", path,
		    REPLAY_MAX);
		goto out;
	}
	/* Exactly the file's size, so that ASan sees a read past the end of the input. */
	if (st.st_size > 0 && ((buf = malloc((size_t)st.st_size)) == NULL ||
	    (n = fread(buf, 1, (size_t)st.st_size, f)) != (size_t)st.st_size)) {
		fprintf(stderr, "replay: %s: short read\n", path);
		goto out;
	}
	LLVMFuzzerTestOneInput(buf, n);
	rc = 0;
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return rc;
}

int
main(int argc, char **argv)
{
	char path[4096];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int i, n = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
			failed = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed |= replay_file(argv[i]) < 0;
			n++;
			continue;
		}
		if ((d = opendir(argv[i])) == NULL) {
			failed = 1;
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			failed |= replay_file(path) < 0;
			n++;
		}
		closedir(d);
	}
	printf("replay: %d inputs%s\n", n, failed ? ", some unreadable" : "");
	return failed || n == 0 ? 1 : 0;
}
