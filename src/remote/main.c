/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cubicle-remote: ch-remote (Cloud Hypervisor v28) for cubicle's API socket, plus `ping` and
 * `shutdown-vmm`. Each subcommand is one HTTP request; the answer's body is printed (JSON
 * pretty-printed), an error is one line on stderr and exit status 1.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "remote/body.h"
#include "remote/http.h"
#include "util/util.h"
#include "version.h"

enum args_kind {
	ARGS_NONE,	     /* no argument */
	ARGS_CONFIG,	     /* one device-syntax argument */
	ARGS_STRING,	     /* one plain argument into a one-field body */
	ARGS_CREATE,	     /* [PATH|-] */
	ARGS_RESIZE,	     /* --cpus N --memory SIZE --balloon SIZE */
	ARGS_RESIZE_ZONE,    /* --id ID --size SIZE */
	ARGS_SEND_MIGRATION, /* URL [--local] */
	ARGS_RESTORE,	     /* RESTORE [--net NET].. [--disk DISK].. [--pmem PMEM].. [--vsock V] */
	ARGS_WAITSTART,	     /* [--timeout MS] */
};

struct subcommand {
	const char *name, *route, *method;
	enum args_kind args;
	enum remote_body body; /* ARGS_CONFIG */
	const char *field;     /* ARGS_STRING */
	const char *help;
};

static const struct subcommand subcommands[] = {
	{ "add-device", "vm.add-device", "PUT", ARGS_CONFIG, BODY_DEVICE, NULL,
	  "Add VFIO device \"path=<device_path>,iommu=on|off,id=<device_id>,"
	  "pci_segment=<segment_id>\"" },
	{ "add-disk", "vm.add-disk", "PUT", ARGS_CONFIG, BODY_DISK, NULL,
	  "Add block device \"path=<disk_image_path>,readonly=on|off,direct=on|off,..."
	  "id=<device_id>\"" },
	{ "add-fs", "vm.add-fs", "PUT", ARGS_CONFIG, BODY_FS, NULL,
	  "Add virtio-fs backed fs device \"tag=<tag_name>,socket=<socket_path>,...\"" },
	{ "add-pmem", "vm.add-pmem", "PUT", ARGS_CONFIG, BODY_PMEM, NULL,
	  "Add persistent memory device \"file=<backing_file_path>,size=<persistent_memory_size>"
	  ",...\"" },
	{ "add-net", "vm.add-net", "PUT", ARGS_CONFIG, BODY_NET, NULL,
	  "Add network device \"tap=<if_name>,ip=<ip_addr>,mask=<net_mask>,mac=<mac_addr>,"
	  "fd=<fd1,fd2...>,...\" (fds are passed with SCM_RIGHTS)" },
	{ "add-user-device", "vm.add-user-device", "PUT", ARGS_CONFIG, BODY_USER_DEVICE, NULL,
	  "Add userspace device \"socket=<socket_path>,id=<device_id>,pci_segment=<segment_id>\"" },
	{ "add-vdpa", "vm.add-vdpa", "PUT", ARGS_CONFIG, BODY_VDPA, NULL,
	  "Add vDPA device \"path=<device_path>,num_queues=<number_of_queues>,...\"" },
	{ "add-vsock", "vm.add-vsock", "PUT", ARGS_CONFIG, BODY_VSOCK, NULL,
	  "Add vsock device "
	  "\"cid=<context_id>,socket=<socket_path>,iommu=on|off,id=<device_id>\"" },
	{ "remove-device", "vm.remove-device", "PUT", ARGS_STRING, 0, "id",
	  "Remove a device <device_id>" },
	{ "info", "vm.info", "GET", ARGS_NONE, 0, NULL, "Info on the VM" },
	{ "counters", "vm.counters", "GET", ARGS_NONE, 0, NULL, "Counters from the VM" },
	{ "pause", "vm.pause", "PUT", ARGS_NONE, 0, NULL, "Pause the VM" },
	{ "reboot", "vm.reboot", "PUT", ARGS_NONE, 0, NULL, "Reboot the VM" },
	{ "power-button", "vm.power-button", "PUT", ARGS_NONE, 0, NULL,
	  "Trigger a power button in the VM" },
	{ "resize", "vm.resize", "PUT", ARGS_RESIZE, 0, NULL,
	  "Resize the VM [--cpus <count>] [--memory <size>] [--balloon <size>]" },
	{ "resize-zone", "vm.resize-zone", "PUT", ARGS_RESIZE_ZONE, 0, NULL,
	  "Resize a memory zone --id <zone_id> --size <size>" },
	{ "resume", "vm.resume", "PUT", ARGS_NONE, 0, NULL, "Resume the VM" },
	{ "boot", "vm.boot", "PUT", ARGS_NONE, 0, NULL, "Boot a created VM" },
	{ "delete", "vm.delete", "PUT", ARGS_NONE, 0, NULL, "Delete a VM" },
	{ "shutdown", "vm.shutdown", "PUT", ARGS_NONE, 0, NULL, "Shutdown the VM" },
	{ "snapshot", "vm.snapshot", "PUT", ARGS_STRING, 0, "destination_url",
	  "Create a snapshot from VM <destination_url>" },
	{ "restore", "vm.restore", "PUT", ARGS_CONFIG, BODY_RESTORE, NULL,
	  "Restore VM from a snapshot \"source_url=<source_url>,prefault=on|off\"" },
	{ "pause2snapshot", "vm.pause2snapshot", "PUT", ARGS_STRING, 0, "destination_url",
	  "Pause the VM if it runs and snapshot it to <destination_url> (CubeSandbox)" },
	{ "resume-from-snapshot", "vm.resume-from-snapshot", "PUT", ARGS_RESTORE, 0, NULL,
	  "Restore a VM and run it (CubeSandbox) \"source_url=<source_url>,prefault=on|off\" "
	  "[--net <net>].. [--disk <disk>].. [--pmem <pmem>].. [--vsock <vsock>]: each replaces "
	  "the snapshot's device with its id" },
	{ "waitstart", "vm.waitstart", "PUT", ARGS_WAITSTART, 0, NULL,
	  "Wait until the guest signals its start (CubeSandbox, --sys-ctrl) [--timeout <ms>]" },
	{ "coredump", "vm.coredump", "PUT", ARGS_STRING, 0, "destination_url",
	  "Create a coredump from VM <file_path>" },
	{ "send-migration", "vm.send-migration", "PUT", ARGS_SEND_MIGRATION, 0, NULL,
	  "Initiate a VM migration <destination_url> [--local]" },
	{ "receive-migration", "vm.receive-migration", "PUT", ARGS_STRING, 0, "receiver_url",
	  "Receive a VM migration <receiver_url>" },
	{ "create", "vm.create", "PUT", ARGS_CREATE, 0, NULL,
	  "Create VM from a JSON configuration [<path>|-] (default: standard input)" },
	{ "ping", "vmm.ping", "GET", ARGS_NONE, 0, NULL, "Ping the VMM (its version)" },
	{ "shutdown-vmm", "vmm.shutdown", "PUT", ARGS_NONE, 0, NULL, "Shut the VMM down" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: cubicle-remote --api-socket <path> <subcommand> [args]\n"
		   "Remotely control a cubicle VMM (Cloud Hypervisor v28's ch-remote).\n\n"
		   "Subcommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-18s %s\n", subcommands[i].name, subcommands[i].help);
}

/* The request a subcommand makes, once its arguments are parsed. */
struct request {
	const struct subcommand *cmd;
	char *body; /* NULL: none */
	int fds[CONFIG_MAX_NET_FDS];
	unsigned nfds;
};

static int take_body(json_t *obj, struct request *req)
{
	if (!obj)
		return -ENOMEM;
	req->body = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	return req->body ? 0 : -ENOMEM;
}

/* "--name value" or "--name=value" at argv[*i]; advances *i past what it used. */
static const char *flag_value(int argc, char *const argv[], int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static int resize_body(const char *option, int argc, char *const argv[], struct request *req,
		       char *err, size_t errlen)
{
	static const char *const flags[] = { "--cpus", "--memory", "--balloon" };
	static const char *const fields[] = { "desired_vcpus", "desired_ram", "desired_balloon" };
	json_t *obj = json_object();

	for (int i = 0; obj && i < argc; i++) {
		const char *v = NULL;
		size_t f;
		uint64_t n;
		int r;

		for (f = 0; f < ARRAY_SIZE(flags) && !v; f++)
			v = flag_value(argc, argv, &i, flags[f]);
		if (!v) {
			json_decref(obj);
			return error_set(err, errlen, -EINVAL, "%s: unexpected argument '%s'",
					 option, argv[i]);
		}
		f--;
		r = f == 0 ? parse_u64(v, UINT8_MAX, &n) : parse_size(v, &n);
		if (r < 0 || n > INT64_MAX) {
			json_decref(obj);
			return error_set(err, errlen, -EINVAL, "%s: invalid value '%s' for %s",
					 option, v, flags[f]);
		}
		if (json_object_set_new(obj, fields[f], json_integer((json_int_t)n)) < 0) {
			json_decref(obj);
			return -ENOMEM;
		}
	}
	return take_body(obj, req);
}

static int resize_zone_body(const char *option, int argc, char *const argv[], struct request *req,
			    char *err, size_t errlen)
{
	const char *id = NULL, *size = NULL, *v;
	uint64_t n;

	for (int i = 0; i < argc; i++) {
		if ((v = flag_value(argc, argv, &i, "--id")))
			id = v;
		else if ((v = flag_value(argc, argv, &i, "--size")))
			size = v;
		else
			return error_set(err, errlen, -EINVAL, "%s: unexpected argument '%s'",
					 option, argv[i]);
	}
	if (!id || !size)
		return error_set(err, errlen, -EINVAL, "%s: needs --id <zone_id> and --size <size>",
				 option);
	if (parse_size(size, &n) < 0 || n > INT64_MAX)
		return error_set(err, errlen, -EINVAL, "%s: invalid size '%s'", option, size);
	return take_body(json_pack("{s:s, s:I}", "id", id, "desired_ram", (json_int_t)n), req);
}

static int send_migration_body(const char *option, int argc, char *const argv[],
			       struct request *req, char *err, size_t errlen)
{
	const char *url = NULL;
	bool local = false;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--local") == 0)
			local = true;
		else if (!url && argv[i][0] != '-')
			url = argv[i];
		else
			return error_set(err, errlen, -EINVAL, "%s: unexpected argument '%s'",
					 option, argv[i]);
	}
	if (!url)
		return error_set(err, errlen, -EINVAL, "%s: needs <destination_url>", option);
	return take_body(json_pack("{s:s, s:b}", "destination_url", url, "local", local), req);
}

/*
 * `resume-from-snapshot RESTORE [--net NET].. [--disk DISK].. [--pmem PMEM].. [--vsock V]`:
 * RestoreConfig with CubeSandbox's per-clone overrides, each in its add-* syntax. The fds of
 * a --net fd=[..] go with the request (SCM_RIGHTS) for the one net override.
 */
static int restore_body(const char *option, int argc, char *const argv[], struct request *req,
			char *err, size_t errlen)
{
	static const struct {
		const char *flag, *key;
		enum remote_body kind;
	} flags[] = {
		{ "--net", "net", BODY_NET },
		{ "--disk", "disks", BODY_DISK },
		{ "--pmem", "pmem", BODY_PMEM },
		{ "--vsock", "vsock", BODY_VSOCK },
	};
	json_t *obj = NULL, *dev;
	int r;

	if (argc < 1 || argv[0][0] == '-')
		return error_set(err, errlen, -EINVAL, "%s: needs source_url=<source_url>", option);
	r = remote_body_from_cli(BODY_RESTORE, option, argv[0], &obj, NULL, NULL, err, errlen);
	for (int i = 1; r == 0 && i < argc; i++) {
		const char *v = NULL;
		size_t f;
		for (f = 0; f < ARRAY_SIZE(flags) && !v; f++)
			v = flag_value(argc, argv, &i, flags[f].flag);
		if (!v) {
			r = error_set(err, errlen, -EINVAL, "%s: unexpected argument '%s'", option,
				      argv[i]);
			break;
		}
		f--;
		if (flags[f].kind == BODY_VSOCK && json_object_get(obj, "vsock")) {
			r = error_set(err, errlen, -EINVAL, "%s: --vsock given more than once",
				      option);
			break;
		}
		int fds[CONFIG_MAX_NET_FDS];
		unsigned nfds = 0;
		r = remote_body_from_cli(flags[f].kind, option, v, &dev, fds, &nfds, err, errlen);
		if (r == 0 && nfds && req->nfds) {
			json_decref(dev);
			r = error_set(err, errlen, -EINVAL,
				      "%s: fd=[..] can be given to one --net only", option);
		}
		if (r < 0)
			break;
		memcpy(req->fds, fds, nfds * sizeof(int));
		req->nfds += nfds;
		if (flags[f].kind == BODY_VSOCK) {
			r = json_object_set_new(obj, "vsock", dev) < 0 ? -ENOMEM : 0;
			continue;
		}
		json_t *a = json_object_get(obj, flags[f].key);
		if (!a && json_object_set_new(obj, flags[f].key, a = json_array()) < 0)
			a = NULL;
		r = a && json_array_append_new(a, dev) == 0 ? 0 : -ENOMEM;
	}
	if (r < 0) {
		json_decref(obj);
		return r;
	}
	return take_body(obj, req);
}

/* `waitstart [--timeout MS]`: without it the server's default (10 s). */
static int waitstart_body(const char *option, int argc, char *const argv[], struct request *req,
			  char *err, size_t errlen)
{
	uint64_t ms;
	int i = 0;
	const char *v = argc > 0 ? flag_value(argc, argv, &i, "--timeout") : NULL;

	if (argc == 0)
		return 0;
	if (!v || i + 1 != argc)
		return error_set(err, errlen, -EINVAL, "%s: unexpected argument '%s'", option,
				 argv[v ? i + 1 : 0]);
	if (parse_u64(v, INT64_MAX, &ms) < 0)
		return error_set(err, errlen, -EINVAL, "%s: invalid value '%s' for --timeout",
				 option, v);
	return take_body(json_pack("{s:I}", "timeout_ms", (json_int_t)ms), req);
}

/* `create [PATH|-]`: the file is checked to be JSON here, for a clear local error. */
static int create_body(const char *option, int argc, char *const argv[], struct request *req,
		       char *err, size_t errlen)
{
	const char *path = argc > 0 ? argv[0] : "-";
	json_error_t je;
	json_t *obj;

	if (argc > 1)
		return error_set(err, errlen, -EINVAL, "%s: unexpected argument '%s'", option,
				 argv[1]);
	/* Duplicate keys are an error, as for Cloud Hypervisor's serde and cubicle's server. */
	if (strcmp(path, "-") == 0)
		obj = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
	else
		obj = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!obj)
		return error_set(err, errlen, -EINVAL, "%s: %s: %s (line %d)", option,
				 strcmp(path, "-") == 0 ? "standard input" : path, je.text,
				 je.line);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return error_set(err, errlen, -EINVAL, "%s: %s: not a JSON object (a VmConfig)",
				 option, path);
	}
	return take_body(obj, req);
}

static int build_request(const struct subcommand *cmd, int argc, char *const argv[],
			 struct request *req, char *err, size_t errlen)
{
	json_t *obj = NULL;
	int r;

	req->cmd = cmd;
	switch (cmd->args) {
	case ARGS_NONE:
		if (argc > 0)
			return error_set(err, errlen, -EINVAL, "%s: unexpected argument '%s'",
					 cmd->name, argv[0]);
		return 0;
	case ARGS_CONFIG:
	case ARGS_STRING:
		if (argc != 1)
			return error_set(err, errlen, -EINVAL, "%s: needs exactly one argument",
					 cmd->name);
		if (cmd->args == ARGS_STRING)
			return take_body(json_pack("{s:s}", cmd->field, argv[0]), req);
		r = remote_body_from_cli(cmd->body, cmd->name, argv[0], &obj, req->fds, &req->nfds,
					 err, errlen);
		return r < 0 ? r : take_body(obj, req);
	case ARGS_CREATE:
		return create_body(cmd->name, argc, argv, req, err, errlen);
	case ARGS_RESIZE:
		return resize_body(cmd->name, argc, argv, req, err, errlen);
	case ARGS_RESIZE_ZONE:
		return resize_zone_body(cmd->name, argc, argv, req, err, errlen);
	case ARGS_SEND_MIGRATION:
		return send_migration_body(cmd->name, argc, argv, req, err, errlen);
	case ARGS_RESTORE:
		return restore_body(cmd->name, argc, argv, req, err, errlen);
	case ARGS_WAITSTART:
		return waitstart_body(cmd->name, argc, argv, req, err, errlen);
	}
	return -EINVAL;
}

/* The server's error message on one line: the "error" string of cubicle's JSON answer, other
 * JSON compacted, or the text with newlines folded (Cloud Hypervisor answers plain text). */
static void print_error_body(const struct http_response *resp)
{
	json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "error"));
	char *text = j && !msg ? json_dumps(j, JSON_COMPACT) : NULL;
	const char *s = msg ? msg : text ? text : resp->body;

	for (; s && *s; s++)
		fputc(*s == '\n' || *s == '\r' ? ' ' : *s, stderr);
	free(text);
	json_decref(j);
}

static int print_response(const struct subcommand *cmd, const struct http_response *resp)
{
	json_t *j;

	if (resp->status < 200 || resp->status > 299) {
		fprintf(stderr, "cubicle-remote: %s: the server answered %d%s", cmd->name,
			resp->status, resp->len ? ": " : "");
		print_error_body(resp);
		fputc('\n', stderr);
		return 1;
	}
	if (resp->len == 0)
		return 0;
	j = json_loadb(resp->body, resp->len, 0, NULL);
	if (j) {
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(j);
	} else {
		fwrite(resp->body, 1, resp->len, stdout);
		if (resp->body[resp->len - 1] != '\n')
			fputc('\n', stdout);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char *argv[])
{
	const char *socket_path = NULL;
	const struct subcommand *cmd = NULL;
	struct request req = { 0 };
	struct http_response resp = { 0 };
	char err[CONFIG_ERR_MAX] = "";
	int i, r;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *v = flag_value(argc, argv, &i, "--api-socket");

		if (v) {
			socket_path = v;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("cubicle-remote %s\n", CUBICLE_VERSION);
			return 0;
		} else {
			fprintf(stderr, "cubicle-remote: unknown option '%s' (see --help)\n",
				argv[i]);
			return 1;
		}
	}
	if (!socket_path || i == argc) {
		fprintf(stderr, "cubicle-remote: %s (see --help)\n",
			!socket_path ? "--api-socket <path> is required" : "missing subcommand");
		return 1;
	}
	for (size_t c = 0; c < ARRAY_SIZE(subcommands) && !cmd; c++)
		if (strcmp(argv[i], subcommands[c].name) == 0)
			cmd = &subcommands[c];
	if (!cmd) {
		fprintf(stderr, "cubicle-remote: unknown subcommand '%s' (see --help)\n", argv[i]);
		return 1;
	}
	r = build_request(cmd, argc - i - 1, argv + i + 1, &req, err, sizeof(err));
	if (r == 0)
		r = http_request(socket_path, cmd->method, cmd->route, req.body, req.fds, req.nfds,
				 &resp, err, sizeof(err));
	free(req.body);
	if (r < 0) {
		fprintf(stderr, "cubicle-remote: %s\n", r == -ENOMEM ? strerror(ENOMEM) : err);
		return 1;
	}
	r = print_response(cmd, &resp);
	http_response_free(&resp);
	return r;
}
