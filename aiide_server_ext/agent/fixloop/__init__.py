"""The fix loop: reproduce a cell's error, let the agent patch it, re-run, verify, and try
again until the notebook runs clean or the loop gives up with a reason (docs/fixloop.md).

One concern per module: ``deps`` (which cells use what others define), ``checks`` (the
notebook's own tests), ``verify`` (re-running what a patch touches), ``prompt`` (what the
model is told), ``loop`` (the attempts, budgets, cancel) and ``result`` (what it ends with).
"""
