# Power BI friendly endpoint: one nested "Inputs" parameter and an optional "GlobalParameters",
# answer under "Results" (Power BI reads the swagger generated from these samples).
import os

import joblib
import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    model_path = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl')
    model = joblib.load(model_path)


numpy_sample_input = NumpyParameterType(np.array([[0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02],
                                                  [-0.0, -0.04, -0.05, -0.03, -0.01, -0.02, 0.07, -0.04, -0.07, -0.09]],
                                                 dtype='float64'))
pandas_sample_input = PandasParameterType(pd.DataFrame({'name': ['Sarah', 'John'], 'age': [25, 26]}))
standard_sample_input = StandardPythonParameterType(0.0)

# nested sample: everything wrapped in a ParameterType shows up in the schema
sample_input = StandardPythonParameterType({'input1': numpy_sample_input,
                                            'input2': pandas_sample_input,
                                            'input3': standard_sample_input})
sample_global_parameters = StandardPythonParameterType(1.0)  # optional
sample_output = StandardPythonParameterType({'Sarah': 206.1, 'John': 69.4})
outputs = StandardPythonParameterType({'Results': sample_output})  # 'Results' is case sensitive


@input_schema('Inputs', sample_input)  # 'Inputs' is case sensitive
@input_schema('GlobalParameters', sample_global_parameters)  # optional, case sensitive too
@output_schema(outputs)
def run(Inputs, GlobalParameters=1.0):
    data = Inputs['input1']
    people = Inputs['input2']
    offset = Inputs['input3']
    assert isinstance(data, np.ndarray)
    assert isinstance(people, pd.DataFrame)
    predictions = model.predict(data) * GlobalParameters + offset
    return {'Results': {name: round(float(p), 3) for name, p in zip(people['name'], predictions)}}
