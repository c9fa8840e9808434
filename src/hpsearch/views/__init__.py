"""What a user reads: terminal tables, live progress, figures, the HTML report, the dashboard.

- ``terminal``: rich tables and machine output (JSON, CSV); ``listing``: which trials, which columns.
- ``progress``: one live view of a run across workers, and of a retrain.
- ``tables``: the retrain's tables, built once and drawn three ways.
- ``figures``, ``report``: plotly figures and the offline HTML report.
- ``dashboard``, ``publish``: optuna-dashboard on the database, and the notes and artifacts it shows.
- ``importance``: parameter importances computed as optuna-dashboard computes them.

Views read results and the store; nothing below imports a view.
"""
