"""uvicorn's httptools protocol, taught Vault's LIST method.

llhttp, the parser under httptools, rejects request methods outside its
fixed table, and LIST is not in it. Vault treats `LIST /v1/p` and
`GET /v1/p?list=true` the same, so a LIST request line is rewritten to the
GET form before the parser sees it. Only a chunk that starts a new request
is rewritten, so a body that happens to start with "LIST " is left alone.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_LIST = b"LIST "
_VERSION = b" HTTP/"


class VaultHttpProtocol(HttpToolsProtocol):
    _between_requests = True

    def on_message_begin(self) -> None:
        self._between_requests = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._between_requests = True

    def data_received(self, data: bytes) -> None:
        if self._between_requests and data.startswith(_LIST):
            data = rewrite_list_request(data)
        super().data_received(data)


def rewrite_list_request(data: bytes) -> bytes:
    end = data.find(_VERSION, len(_LIST))
    if end < 0:
        return data
    target = data[len(_LIST) : end]
    separator = b"&" if b"?" in target else b"?"
    return b"GET " + target + separator + b"list=true" + data[end:]
