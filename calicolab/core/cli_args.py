"""The command line, built once: how a task declares the cluster settings it takes, how flags
are spelled, and numbers given on the command line.

Every task is made by `cli_task`: the settings it names become flags whose help comes from the
one table of settings (config.SETTINGS), and the body receives the ones given as one mapping
(`cluster`), so no signature copies twelve parameters. Invoke's automatic short flags are off:
they were derived per task from the letters of its parameters, so `-e` was --etcd in one task
and --prefix in another, and `e2e --help` even showed a `--=STRING` flag (a dash taken as the
letter). The only short flags are the deliberate ones in SHORT_FLAGS, the same in every task.
"""

from __future__ import annotations

import functools
import inspect
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from invoke import Exit, Task, task

from calicolab.core.config import SETTINGS
from calicolab.core.errors import StageFailed, Terminated, UserError

# Parameter -> its one short flag, wherever the parameter exists (README: `invoke verify -p '-k x'`).
SHORT_FLAGS = {"pytest_args": "p"}
# The cluster settings of the tasks that bring up, provision, check or time a cluster (and so
# what a matrix lane may set: it is one `invoke e2e` told everything on its command line).
CLUSTER = ("provider", "prefix", "etcd", "docker", "calico", "calicoctl", "calico_source", "privileged", "run_dir",
           "reports_dir", "subnet", "etcd_tls", "vm_os", "vm_cpus", "vm_memory", "time_scale")
BOOLEAN_FLAGS = ("etcd_tls",)  # --etcd-tls alone means true; --etcd-tls false says no


def whole_number(flag: str, text: str | int, minimum: int = 0, example: str = "2") -> int:
    """Task flags with string defaults are parsed here, so a bad value is one line (Invoke's
    own int conversion would print a traceback)."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UserError(f"{flag} must be a whole number, not {text!r}: e.g. {flag} {example}") from None
    if value < minimum:
        raise UserError(f"{flag} must be {minimum} or more, not {value}")
    return value


def flag_names(param: str) -> list[str]:
    """The spellings of a parameter's flag: the setting's own flag first (vm_os: --os, as users
    and CI write it), the parameter's name with dashes, then its deliberate short flag."""
    dashed = param.rstrip("_").replace("_", "-")
    setting = SETTINGS.get(param)
    names = [setting.flag, dashed] if setting is not None and setting.flag else [dashed]
    if param in SHORT_FLAGS:
        names.append(SHORT_FLAGS[param])
    return names


class CliTask(Task):
    """An Invoke task without automatic short flags, spelled by flag_names()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Any]:
        held = dict(self.help)  # Invoke pops the help it uses: keep it for the next listing
        try:
            return super().get_arguments(ignore_unknown_help)
        finally:
            self.help = held

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        opts["names"] = flag_names(name)
        # The body's keyword; an alias equal to the flag's own name would point at itself.
        opts.pop("attr_name", None)
        if opts["names"][0] != name:
            opts["attr_name"] = name
        return opts


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one line and a non-zero exit, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_terminated)  # a cancelled CI job cleans up too
            # A task started in the background of a script inherits SIGINT ignored (POSIX: a
            # non-interactive shell's asynchronous commands), and Python then never raises
            # KeyboardInterrupt: a matrix lane ran to its end after the matrix forwarded the
            # interrupt. Every task takes Ctrl-C, and cleans up on it, however it was started.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            raise Exit(f"error: {err}", code=2) from None
        except StageFailed as err:
            raise Exit(f"failed: {err}", code=1) from None
        except Terminated:
            raise Exit("terminated", code=143) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def _with_settings(fn: Callable[..., Any], keys: tuple[str, ...]) -> Callable[..., Any]:
    """fn(c, ..., cluster) as a task body taking each setting as a flag: the given ones (not
    None, not empty) reach fn as `cluster`, keyed by setting."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "cluster"]
    clash = {p.name for p in own} & set(keys)
    if clash:
        raise TypeError(f"{fn.__name__}: {sorted(clash)} are both its own parameters and settings")
    extra = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None) for k in keys]

    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in keys if k in kwargs}
        return fn(*args, cluster={k: v for k, v in given.items() if v not in (None, "")}, **kwargs)

    body.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    return body


def cli_task(*settings: str, help: dict[str, str] | None = None, optional: Iterable[str] = (),
             **task_kwargs: Any) -> Callable[[Callable[..., Any]], CliTask]:
    """Make a task: its own parameters, plus the named settings (see config.SETTINGS) as flags;
    a body that names settings takes them as `cluster`. Help for a setting comes from the table
    unless the task words it for itself (upgrade's --etcd is the target version)."""
    unknown = [k for k in settings if k not in SETTINGS]
    if unknown:
        raise TypeError(f"not declared in config.SETTINGS: {unknown}")

    def decorate(fn: Callable[..., Any]) -> CliTask:
        body = _with_settings(fn, settings) if settings else fn
        texts = {**{k: SETTINGS[k].help for k in settings}, **(help or {})}
        flags_optional = [*optional, *(k for k in settings if k in BOOLEAN_FLAGS)]
        return task(klass=CliTask, help=texts, optional=flags_optional, **task_kwargs)(friendly(body))

    return decorate


def renamed(old: str, new: str) -> None:
    """An old spelling still works for one release; it says the new one (on stderr, so output
    read by scripts stays the same)."""
    print(f"note: `invoke {old}` is now `invoke {new}`; the old spelling goes in the next release",
          file=sys.stderr, flush=True)
