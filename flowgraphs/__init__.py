"""flowgraphs"""
