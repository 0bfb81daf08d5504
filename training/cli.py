"""`sqlext train`: registered into the sqlext command through the `sqlext.commands` entry point."""


def add_train_command(commands) -> None:
    train = commands.add_parser("train", help="fine-tune a new head on labelled images (BigDL)")
    train.set_defaults(func=lambda args, home: print("not implemented yet") or 2)
