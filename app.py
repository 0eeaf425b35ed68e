"""The lecturer's app: `make app` (or `streamlit run app.py`). Pages live in lcviz/app/."""

from lcviz.app import main

main()
