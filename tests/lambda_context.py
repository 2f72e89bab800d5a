from local.lambda_runtime import LocalContext


def context(name: str = "test") -> LocalContext:
    return LocalContext(function_name=name)
