"""Bringing comments in from WordPress, Disqus, Isso and kibitz's own export.

Each format is a module with a ``Source`` class: ``scan()`` reads the whole input once,
streaming, and refuses it (:class:`server.portability.importers.report.ImportRefused`)
before anything is written; ``records()`` then yields threads and comments in an order
where parents come first. ``writer.run_import`` is the one place that writes them, in batches.
"""
