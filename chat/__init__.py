"""Chat between visitors and agents (docs/chat.md).

- :mod:`chat.models`: the tables (on cobrowse.storage's ``Base``, one migration history),
- :mod:`chat.service`: :class:`~chat.service.ChatService`, the domain operations,
- :mod:`chat.transcript`, :mod:`chat.mail`, :mod:`chat.files`, :mod:`chat.text`:
  transcripts, their mail, file storage and text formatting.

Nothing is imported here, so that ``import chat.models`` (done by
cobrowse.storage to register the tables) stays cheap and free of cycles.
"""
