#!/usr/bin/python3
"""A minimal PAM application: authenticates USER through SERVICE N times in
one process, answering every prompt with ANSWER, and reports the number of
threads of the process before and after (to show the module leaves none
behind). Run it under pam_wrapper to pick the service directory.

usage: pam_driver.py SERVICE USER ANSWER N
ANSWER "sign:COMMAND" answers an "ecp challenge TOKEN" prompt with the
output of `COMMAND TOKEN` (e.g. ecpctl sign ...), printing what it signed.
prints: successes=K failures=F threads_before=B threads_after=A seconds=S
"""
import ctypes
import os
import time
import shlex
import subprocess
import sys

PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON = 1, 2


class PamMessage(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class PamResponse(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


CONV = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(PamMessage)),
    ctypes.POINTER(ctypes.POINTER(PamResponse)),
    ctypes.c_void_p,
)


class PamConv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]


def main():
    service, user, answer, count = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
    libc = ctypes.CDLL(None)
    libc.calloc.restype = ctypes.c_void_p
    libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    libc.strdup.restype = ctypes.c_void_p
    libc.strdup.argtypes = [ctypes.c_char_p]
    # Load libpam globally, then look symbols up in the global namespace,
    # where a preloaded pam_wrapper's pam_start comes first.
    ctypes.CDLL("libpam.so.0", mode=ctypes.RTLD_GLOBAL)
    pam = ctypes.CDLL(None)
    pam.pam_start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(PamConv), ctypes.POINTER(ctypes.c_void_p)]
    pam.pam_authenticate.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]

    def reply_to(prompt):
        if answer.startswith(b"sign:") and b"ecp challenge " in prompt:
            token = prompt.split(b"ecp challenge ", 1)[1].split()[0].decode()
            print("challenge prompt: %s" % prompt.decode().replace("\n", " | "), file=sys.stderr)
            command = shlex.split(answer[5:].decode()) + [token]
            signature = subprocess.run(command, check=True, capture_output=True).stdout.strip()
            print("answered with signature: %s" % signature.decode(), file=sys.stderr)
            return signature
        return answer

    def converse(n, messages, responses, _appdata):
        # libpam frees the array and each answer, so both come from malloc.
        array = ctypes.cast(libc.calloc(n, ctypes.sizeof(PamResponse)), ctypes.POINTER(PamResponse))
        for i in range(n):
            message = messages[i].contents
            if message.msg_style in (PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON):
                array[i].resp = libc.strdup(reply_to(message.msg or b""))
            elif message.msg:
                print("module says: %s" % message.msg.decode(errors="replace"), file=sys.stderr)
        responses[0] = array
        return 0

    conv = PamConv(CONV(converse), None)
    threads = lambda: len(os.listdir("/proc/self/task"))
    before = threads()
    successes = failures = 0
    started = time.monotonic()
    for _ in range(count):
        handle = ctypes.c_void_p()
        rc = pam.pam_start(service.encode(), user.encode(), ctypes.byref(conv), ctypes.byref(handle))
        if rc != 0:
            sys.exit("pam_start failed: %d" % rc)
        rc = pam.pam_authenticate(handle, 0)
        pam.pam_end(handle, rc)
        if rc == 0:
            successes += 1
        else:
            failures += 1
    seconds = time.monotonic() - started
    print("successes=%d failures=%d threads_before=%d threads_after=%d seconds=%.6f"
          % (successes, failures, before, threads(), seconds))


main()
