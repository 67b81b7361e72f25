"""A command timeout on a connection that died meanwhile must not print a thread traceback."""

from calicolab.core.remote import Node, SshTarget, _QuietRemote


class _DeadChannel:
    def close(self):
        raise EOFError


def test_nodes_use_the_quiet_runner_and_its_kill_survives_a_dead_transport():
    node = Node(SshTarget("node1", "127.0.0.1", 2222, "vagrant", "/nonexistent"), "192.168.223.131")
    assert node.conn.config.runners.remote is _QuietRemote
    runner = _QuietRemote(context=node.conn)
    runner.channel = _DeadChannel()
    runner.kill()  # Fabric's own Remote.kill raises EOFError here (in its timer thread)
