"""What a user can do, one function per action, each taking a typed options object and returning a typed
result: the command line only parses arguments into the options and prints the results, the pipeline
(`dynabert run`) calls the same functions in order, the dashboard's export button calls `export`, and the
benchmarks call nothing else of `app`.

    train.py      train_stage, rewire, evaluate          (StageOptions -> StageResult, RewireResult, ...)
    profile.py    profile                               (ProfileOptions -> ProfileResult)
    search.py     search                                (SearchOptions -> SearchResult)
    export.py     export                                (ExportOptions -> list[Exported])
    baselines.py  run_baselines                         (BaselineOptions -> list of baselines.csv rows)
    baseline_options.py  BaselineOptions                (torch-free, so that the parser is built without torch)
    pipeline.py   run_pipeline, resolve, stage_plan     (resolved options -> the run's timing record)

Arrows: `app.workflow` imports `elastic`, `profiling` and `search`; the CLI modules (`app/cli_*.py`), the
pipeline and the dashboard import `app.workflow`; nothing in `app.workflow` imports the CLI.
"""
