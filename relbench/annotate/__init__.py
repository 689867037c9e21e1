"""Human judgments on a run's own images: a sampling plan, a local annotation server, an offline
page for remote annotators, and append-only answer files under RUN_DIR/human/.

The package writes files only; ``relbench.results.human`` turns them into the ``human`` judge and the
meta-evaluation of the automatic judges. Starlette and uvicorn (extra ``annotate``) are imported
only by the server.
"""
