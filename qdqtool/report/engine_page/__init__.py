"""The engine page: one self-contained HTML file of the network as TensorRT runs it (written by check, report and
build on request). graph: edges and layout segments read from an EngineModel; page: the HTML with its script
inlined; views: what each command draws."""

from qdqtool.report.engine_page.page import PageView, engine_page_html, int8_coverage, layer_marks, write_engine_page
from qdqtool.report.engine_page.views import check_views, report_views

__all__ = ["PageView", "check_views", "engine_page_html", "int8_coverage", "layer_marks", "report_views",
           "write_engine_page"]
