"""Actions: the only code that changes the model. One module per verb; each takes an
``ActionContext`` (``context.py``), which ``model.Model`` provides. ``api/``, ``manager.py``
and the model-tier tests call these; nothing else changes state.

    boot            rebuild the tree from the store, recover what a dead manager left
    resolve         fetch and verify a manifest, add the static children
    start           run the program and wait until it serves (lazy: on a capability request)
    stop            end the program, children first; the instance stays
    start_many      start / stop several at once, their records in one commit
    stop_many
    shutdown        stop for good (manager shutdown, the first step of destroy)
    destroy         shutdown, then remove children, storage and records
    create_child    add a dynamic child
    open_capability route a capability, start its provider, grant the client
    request_stop    a program asks to stop (idle or done)
    pause / resume  freeze a running program's process group / thaw it
    restart         stop, then start again
    reload          re-resolve manifests; restart what changed, keep the rest running
    delete_storage  empty a stopped instance's storage (and forget its snapshot)
    snapshot_storage / restore_storage  keep a copy of its storage areas / put them back
"""

from .batch import start_many, stop_many
from .boot import boot
from .create import create_child
from .destroy import destroy
from .open import FRAMEWORK_PROTOCOLS, Opened, open_capability
from .pause import pause, resume
from .reload import reload
from .restart import restart
from .resolve import RoutingView, resolve, resolve_async, walk_routes
from .shutdown import shutdown
from .start import mark_serving, node_of, start
from .stop import request_stop, stop
from .storage import delete_storage, restore_storage, snapshot_storage

__all__ = ["FRAMEWORK_PROTOCOLS", "Opened", "RoutingView", "boot", "create_child", "delete_storage",
           "destroy", "mark_serving", "node_of", "open_capability", "pause", "reload", "request_stop", "resolve",
           "resolve_async", "restart", "restore_storage", "resume", "shutdown", "snapshot_storage", "start",
           "start_many", "stop", "stop_many",
           "walk_routes"]
