"""Running a benchmark: the plan, drawing and scoring, the image store, processes, the output
directory. (Named ``engine`` because ``relbench.run`` is the notebook function.)"""
