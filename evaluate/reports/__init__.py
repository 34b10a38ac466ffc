"""The presentation side: a ladder's analyses (:mod:`.ladder`) and a submission's comparison with it
(:mod:`.compare`) as Markdown/JSON reports (:mod:`.report`) and plots (:mod:`.plots`), and the static
leaderboard (:mod:`.leaderboard`).

May import: :mod:`instdecay.evaluate.stats`, :mod:`instdecay.evaluate.submissions`, :mod:`instdecay.loaders`.
"""
