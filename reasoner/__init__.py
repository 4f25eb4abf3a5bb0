"""reasoner"""
