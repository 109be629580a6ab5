"""Dies of SIGSEGV as soon as it runs: a crash nobody asked for."""
import os
import signal

os.kill(os.getpid(), signal.SIGSEGV)
