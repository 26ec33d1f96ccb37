"""A Debug Adapter Protocol client over a socket: the messages VS Code sends to debugpy, and nothing else."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any


class DapClient:
    """Connects (retrying until ``deadline``: a published container port accepts before debugpy listens behind
    it) and says ``initialize``."""

    def __init__(self, port: int, deadline: float) -> None:
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                self.reader = self.sock.makefile("rb")
                self.seq = 0
                self.send("initialize", {"clientID": "vscode", "adapterID": "debugpy", "pathFormat": "path"})
                self.initialized = self.until("response", "initialize")
                return
            except (OSError, ValueError):
                with contextlib.suppress(AttributeError):
                    self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def send(self, command: str, arguments: dict[str, Any]) -> int:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command, "arguments": arguments}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def read(self) -> dict[str, Any]:
        length = 0
        while (line := self.reader.readline()).strip() != b"":
            name, _, value = line.strip().partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if not line:
            raise ValueError("the debug adapter closed the connection")
        message: dict[str, Any] = json.loads(self.reader.read(length))
        return message

    def until(self, kind: str, name: str, request_seq: int | None = None) -> dict[str, Any]:
        """The next message of this kind and name (a response to ``request_seq`` when given); others are skipped."""
        while True:
            message = self.read()
            named = message["type"] == kind and message.get("command", message.get("event")) == name
            if named and (request_seq is None or message.get("request_seq") == request_seq):
                return message

    def request(self, command: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.until("response", command, self.send(command, arguments))

    def drain(self) -> None:
        """Read on, as VS Code does (a debuggee's output comes as events); ends when the socket does."""
        self.sock.settimeout(None)
        with contextlib.suppress(OSError, ValueError):
            while self.reader.read(65536):
                pass
