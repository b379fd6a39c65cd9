// Code only Icarus compiles (__ICARUS__ is predefined there, not in slang).
`ifdef __ICARUS__
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = 8'hxx;
endmodule
`else
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
endmodule
`endif
